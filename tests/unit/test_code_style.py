import re
import shutil
import subprocess

from studio.core.settings import PROJECT_ROOT


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    assert ruff, "ruff is part of the test extra"
    check = subprocess.run([ruff, "check", "."], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    formatted = subprocess.run(
        [ruff, "format", "--check", "."], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout


def test_the_layers_point_one_way():
    """The import contracts in pyproject.toml: UI and command line -> pipelines -> core; no Gradio below
    the UI; no torch, diffusers or transformers in the UI's own code; nothing imports app.py."""
    lint_imports = shutil.which("lint-imports")
    assert lint_imports, "import-linter is part of the test extra"
    check = subprocess.run([lint_imports], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", check.stdout)
    assert kept and int(kept.group(1)) >= 4, check.stdout


def test_no_module_imports_itself_round_a_circle():
    """Type-only imports count too: a circle means two modules that cannot be read apart."""
    import grimp

    graph = grimp.build_graph("studio", "pipelines", cache_dir=None)
    circles = sorted(
        {
            tuple(sorted((module, imported)))
            for module in graph.modules
            for imported in graph.find_modules_directly_imported_by(module)
            if graph.chain_exists(importer=imported, imported=module)
        }
    )
    assert circles == [], circles


def test_a_part_of_the_pipelines_never_imports_a_task():
    """pipelines/parts/ holds what tasks are made of; a part that imported a task would tie them in a knot."""
    import grimp

    graph = grimp.build_graph("pipelines", cache_dir=None)
    parts = {module for module in graph.modules if module.startswith("pipelines.parts")}
    reaching_out = sorted(
        (part, imported)
        for part in parts
        for imported in graph.find_modules_directly_imported_by(part)
        if imported.startswith("pipelines") and imported not in parts and imported != "pipelines"
    )
    assert reaching_out == [], reaching_out
