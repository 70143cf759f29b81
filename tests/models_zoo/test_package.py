import subprocess
import sys


def test_import_needs_only_torch_and_numpy():
    code = (
        "import sys, models_zoo, models_zoo.preprocess, models_zoo.runner, models_zoo.crab_parse;"
        "models_zoo.available();"
        "bad = [m for m in ('django', 'av', 'transformers', 'wordllama') if m in sys.modules];"
        "assert not bad, bad; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_registry_lists_presets():
    import models_zoo

    av = models_zoo.available()
    assert set(av) == {"cavmae", "leap", "crab"}
    for presets in av.values():
        assert {"tiny", "base", "full"} <= set(presets)
