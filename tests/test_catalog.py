"""--models: NAME=PATH names a model, so two builds of one family can share a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbot.models.catalog import ZOO_DIR, ModelError, resolve_models, zoo_families

pytestmark = pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")


def test_name_equals_path_renames_the_family_and_its_variants() -> None:
    folder = ZOO_DIR / zoo_families()[0]
    old, new = resolve_models([f"old={folder}", f"new={folder}"], variants=["int8"])
    assert (old.name, new.name) == ("old", "new")
    assert [(v.family, v.variant, v.path) for v in old.variants] == [("old", "int8", folder / "int8.tflite")]
    assert old.variants[0].sha256 == new.variants[0].sha256 and old.baseline == "fp32"


def test_a_path_holding_an_equals_sign_is_still_a_path(tmp_path: Path) -> None:
    folder = tmp_path / "a=b"
    folder.mkdir()
    source = ZOO_DIR / zoo_families()[0] / "int8.tflite"
    (folder / "int8.tflite").write_bytes(source.read_bytes())
    [family] = resolve_models([str(folder)])
    assert family.name == "a=b"


@pytest.mark.parametrize(("spec", "message"), [
    ("=x", "a model name before '=' must be a non-empty printable name"),
    ("a/b=x", "without '/'"),
    ("old=", "names no model after '='"),
    ("old=nosuchmodel", "'nosuchmodel' is neither a .tflite file"),
])
def test_bad_names_are_one_sentence(spec: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        resolve_models([spec])


def test_two_models_with_one_name_suggest_naming_them() -> None:
    name = zoo_families()[0]
    with pytest.raises(ModelError, match=f"two models are both called '{name}'; name them with NAME=PATH"):
        resolve_models([name, str(ZOO_DIR / name)])
