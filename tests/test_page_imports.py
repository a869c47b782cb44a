"""No page imports another page (issue 10.8): shared widgets live in their own modules.

A page is a module listed in app/views/__init__.py or app/lab/__init__.py PAGES (it has a render()).
Checked statically on the source, so a page imported inside a function is caught too."""

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pages() -> set[str]:
    out = set()
    for table in ("app/views/__init__.py", "app/lab/__init__.py"):
        tree = ast.parse(open(os.path.join(REPO, table), encoding="utf-8").read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAGES" for t in node.targets):
                out |= {row[3] for row in ast.literal_eval(node.value)}
    return out


def _imports(path: str, module: str) -> set[str]:
    """Every module `path` imports, with `from a import b` counted as both a and a.b."""
    out = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from .x import y
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


def _app_modules():
    for folder, _, files in os.walk(os.path.join(REPO, "app")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                yield path, rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def test_pages_are_listed_and_have_render():
    pages = _pages()
    assert {"app.views.elbo", "app.views.train", "app.lab.elbo_anatomy", "app.lab.ae_vs_vae"} <= pages
    for page in pages:
        src = open(os.path.join(REPO, *page.split(".")) + ".py", encoding="utf-8").read()
        assert any(isinstance(n, ast.FunctionDef) and n.name == "render" for n in ast.parse(src).body), page


def test_no_module_of_the_app_imports_a_page():
    pages = _pages()
    offenders = {}
    for path, module in _app_modules():
        if module == "app.main":
            continue  # the navigation names pages as strings and imports each when it runs
        bad = _imports(path, module) & (pages - {module})
        if bad:
            offenders[module] = sorted(bad)
    assert not offenders, offenders


def test_the_check_sees_an_import_of_a_page(tmp_path):
    """The check itself: both import forms of a page module are found."""
    p = tmp_path / "m.py"
    p.write_text(
        "from app.views.elbo import x\nfrom app.lab import elbo_anatomy\ndef f():\n    import app.views.train\n"
    )
    assert {"app.views.elbo", "app.lab.elbo_anatomy", "app.views.train"} <= _imports(str(p), "app.views.m")
