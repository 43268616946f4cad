"""attnlab.zoo: the key of a trained model changes with its configuration and its code, not otherwise;
a stored model is loaded, not trained again; chapter 4's recipe builds and trains at the smoke budget."""

import json
import pytest
import torch
from torch import nn

from attnlab import zoo


def _build(config):
    torch.manual_seed(0)
    return nn.Linear(config["width"], 1)


def _fit(model, config):
    calls.append(config)
    with torch.no_grad():
        model.weight.fill_(config["fill"])
    return {"loss": [1.0, 0.5]}


calls: list[dict] = []


def test_the_key_follows_the_config_and_the_code_and_nothing_else():
    base = zoo.cache_key("m", {"width": 3, "lr": 0.1}, [_build, _fit])
    assert base == zoo.cache_key("m", {"lr": 0.1, "width": 3}, [_build, _fit])      # same config, other order
    assert base != zoo.cache_key("m", {"width": 3, "lr": 0.2}, [_build, _fit])      # a config change
    assert base != zoo.cache_key("other", {"width": 3, "lr": 0.1}, [_build, _fit])  # another name
    assert base != zoo.cache_key("m", {"width": 3, "lr": 0.1}, [_fit, _build])      # other code
    assert base != zoo.cache_key("m", {"width": 3, "lr": 0.1}, [_build, _fit, zoo.cache_dir])
    assert base != zoo.cache_key("m", {"width": 3, "lr": 0.1}, [_build, _fit, zoo])   # a module's source too
    assert len(base) == 16


def test_a_stored_model_is_loaded_and_a_changed_config_trains_again(tmp_path):
    calls.clear()
    config = {"width": 3, "fill": 0.25}
    first, record = zoo.cached("m", config, _build, _fit, directory=tmp_path)
    again, record2 = zoo.cached("m", config, _build, _fit, directory=tmp_path)
    assert len(calls) == 1 and not record["from_cache"] and record2["from_cache"]    # trained once
    torch.testing.assert_close(again.weight, torch.full((1, 3), 0.25))              # the trained weights, loaded
    assert record2["fit"] == {"loss": [1.0, 0.5]} and record2["key"] == record["key"]
    changed, record3 = zoo.cached("m", {**config, "fill": 0.5}, _build, _fit, directory=tmp_path)
    assert len(calls) == 2 and not record3["from_cache"] and record3["key"] != record["key"]
    torch.testing.assert_close(changed.weight, torch.full((1, 3), 0.5))
    stored = json.loads((tmp_path / f"m-{record['key']}" / "record.json").read_text())
    assert stored["config"] == config and stored["train_seconds"] >= 0


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNLAB_MODEL_CACHE", str(tmp_path / "models"))
    assert zoo.cache_dir() == tmp_path / "models"
    monkeypatch.delenv("ATTNLAB_MODEL_CACHE")
    assert zoo.cache_dir().parts[-2:] == ("_build", ".attnlab_models")


def test_scenes_vit_trains_at_the_smoke_budget_and_is_shared(tmp_path):
    model, record, history = zoo.scenes_vit("smoke", directory=tmp_path)
    config = zoo.scenes_vit_config("smoke")
    assert not record["from_cache"] and len(history.loss) == config["steps"]
    assert history.eval_step[-1] == config["steps"] and 0 <= history.last("accuracy") <= 1
    loaded, record2, _ = zoo.scenes_vit("smoke", directory=tmp_path)
    assert record2["from_cache"]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert zoo.scenes_vit_config("cpu")["steps"] > config["steps"]
    with pytest.raises(ValueError):
        zoo.scenes_vit_config("laptop")


def test_scenes_world_reads_a_preset_or_a_preset_with_changes(tmp_path):
    from attnlab.data import scenes as sc

    assert zoo.scenes_world("easy") == sc.preset("easy")
    small = zoo.scenes_world(zoo.SMALL_OBJECTS)
    assert small == sc.preset("easy", scale=(0.3, 0.6))
    assert zoo.scenes_world(json.loads(json.dumps(zoo.SMALL_OBJECTS))) == small     # as the cache's record has it
    assert zoo.scenes_vit_config("cpu", zoo.SMALL_OBJECTS)["scenes"] == zoo.SMALL_OBJECTS
    assert zoo.scenes_vit_config("cpu")["scenes"] == "easy"
    g = torch.Generator().manual_seed(0)
    large = sc.make_scenes(200, generator=g, config=sc.preset("easy")).masks.gt(0).float().mean()
    smaller = sc.make_scenes(200, generator=g, config=small).masks.gt(0).float().mean()
    assert smaller < 0.6 * large
    with pytest.raises(ValueError, match="unknown preset"):
        zoo.scenes_world({"preset": "tiny"})
    _, first, _ = zoo.scenes_vit("smoke", world=zoo.SMALL_OBJECTS, directory=tmp_path)
    _, other, _ = zoo.scenes_vit("smoke", directory=tmp_path)
    assert first["key"] != other["key"] and not other["from_cache"]
    assert zoo.scenes_vit("smoke", world=zoo.SMALL_OBJECTS, directory=tmp_path)[1]["from_cache"]


def test_korean_numbers_rnn_is_chapter_2s_experiment_and_is_shared(tmp_path):
    from attnlab import seq2seq
    from attnlab.data import translation as tr

    run = zoo.korean_numbers_rnn("additive", "smoke", directory=tmp_path)
    src, tgt = tr.korean_tokenizers()
    budget = seq2seq.korean_numbers_budget("smoke")
    direct = seq2seq.korean_numbers_experiment(
        lambda: seq2seq.Seq2Seq(src_vocab=len(src), tgt_vocab=len(tgt), embed_dim=16, dim=budget.dim,
                                attention="additive"), budget, lr=1e-2)
    assert run.accuracy == direct.accuracy and run.history.loss == direct.history.loss
    again = zoo.korean_numbers_rnn("additive", "smoke", directory=tmp_path)
    for a, b in zip(again.model.state_dict().values(), direct.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert again.seconds == run.seconds and len(list(tmp_path.iterdir())) == 1
