# One image for web (gunicorn + WhiteNoise), worker, beat and the init step. GPU workers use Dockerfile.gpu.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt .
RUN pip install "$(grep -E '^torch==' requirements.txt)" --index-url https://download.pytorch.org/whl/cpu \
 && pip install -r requirements.txt
COPY . .
# Static files: hashed, compressed copies under /app/staticfiles, served by WhiteNoise (no settings needed but these)
RUN SECRET_KEY=collectstatic-only DEBUG=0 AVCROWD_ENV_FILE= python manage.py collectstatic --noinput -v0 \
 && useradd --create-home --uid 1000 avcrowd && mkdir -p /app/var && chown avcrowd /app/var
USER avcrowd
EXPOSE 8000
CMD ["gunicorn", "--config", "config/gunicorn.py", "config.wsgi:application"]
