# One image for web, worker and beat. GPU workers use Dockerfile.gpu (CUDA torch).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt .
RUN pip install "$(grep -E '^torch==' requirements.txt)" --index-url https://download.pytorch.org/whl/cpu \
 && pip install -r requirements.txt
COPY . .
RUN SECRET_KEY=build DEBUG=0 python manage.py collectstatic --noinput -v0
EXPOSE 8000
# One worker process per core, 16 threads each (see docs/benchmarks.md, "Annotator saves"); WEB_CONCURRENCY sets
# the number of processes.
ENV WEB_CONCURRENCY=2
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--threads", "16", "--worker-class", "gthread"]
