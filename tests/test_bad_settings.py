"""Every setting is checked in one place: the CLI, the library and the app give the same message,
naming the setting and its allowed range, before any data is read or any weight is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from songrec.cli import main
from songrec.config import EvaluationSettings, NetworkSettings, TrainSettings
from songrec.models import make_model
from songrec.settings import SettingError

BAD_TRAINING = [
    ("--epochs", "0", "neural setting epochs must be from 1 to 1000, not 0"),
    ("--batch-size", "0", "neural setting batch_size must be from 1 to 8192, not 0"),
    ("--embedding-dim", "0", "neural setting embedding_dim must be from 4 to 1024, not 0"),
    ("--hidden-dim", "-5", "neural setting hidden_dim must be from 4 to 4096, not -5"),
    ("--hidden-dim", "10000000", "neural setting hidden_dim must be from 4 to 4096, not 10000000"),
    ("--device", "tpu", "neural setting device must be one of auto, cpu, cuda, mps, not tpu"),
    ("--learning-rate", "1e300", "neural setting learning_rate must be from 1e-06 to 1, not 1e300"),
    ("--learning-rate", "nan", "neural setting learning_rate must be from 1e-06 to 1, not nan"),
    ("--members", "two", "neural setting members must be from 1 to 8, not two"),
    ("--tied", "maybe", "neural setting tied must be true or false, not maybe"),
    ("--tied", "ture", "neural setting tied must be true or false, not ture"),
]


@pytest.mark.parametrize(("option", "value", "message"), BAD_TRAINING)
def test_train_refuses_a_bad_setting_before_reading_data(
    capsys: pytest.CaptureFixture, tmp_path: Path, option: str, value: str, message: str
) -> None:
    code = main(["train", "--data", str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "m.st"), option, value])
    err = capsys.readouterr().err
    assert code == 2
    assert f"songrec: {message}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "m.st").exists()


@pytest.mark.parametrize(("option", "value", "message"), BAD_TRAINING)
def test_the_library_gives_the_same_message(option: str, value: str, message: str) -> None:
    name = option.removeprefix("--").replace("-", "_")
    with pytest.raises(SettingError) as caught:
        make_model("neural", **{name: value})
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--test-share", "1.5"], "evaluate setting test_share must be from 0.01 to 0.9, not 1.5"),
        (["--test-share", "0"], "evaluate setting test_share must be from 0.01 to 0.9, not 0"),
        (["--max-cases", "-1"], "evaluate setting max_cases must be from 0 to 10_000_000, not -1"),
        (["--param", "factors=0", "--model", "als"], "als setting factors must be from 1 to 1024, not 0"),
        (["--param", "nonsense=1", "--model", "als"], "--param nonsense=1: no setting 'nonsense' in als"),
        (["--param", "factors", "--model", "als"], "--param takes key=value, not 'factors'"),
    ],
)
def test_evaluate_refuses_bad_arguments(
    capsys: pytest.CaptureFixture, demo_dir: Path, arguments: list[str], message: str
) -> None:
    code = main(["evaluate", "--train", str(demo_dir), *arguments])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"songrec: {message}" in err


def test_a_number_and_its_text_get_the_same_message() -> None:
    messages = set()
    for value in (0, "0", " 0 "):
        with pytest.raises(SettingError) as caught:
            make_model("neural", epochs=value)
        messages.add(str(caught.value))
    assert messages == {"neural setting epochs must be from 1 to 1000, not 0"}


def test_settings_classes_refuse_out_of_range_values() -> None:
    with pytest.raises(SettingError, match="evaluate setting test_share must be from 0.01 to 0.9, not 1.5"):
        EvaluationSettings(test_share=1.5)
    with pytest.raises(SettingError, match="neural setting val_share must be from 0 to 0.5, not 0.7"):
        TrainSettings(val_share=0.7)
    with pytest.raises(SettingError, match="unknown neural setting colour"):
        NetworkSettings.build({"colour": "blue"})
    assert TrainSettings(epochs="3").epochs == 3  # text from a form or the CLI is converted


def test_a_gpu_this_machine_lacks_is_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data, out = str(tmp_path / "no-such-folder"), str(tmp_path / "m.st")
    code = main(["train", "--data", data, "--out", out, "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and "songrec: neural setting device: " in err and "no CUDA GPU" in err
    assert "Traceback" not in err
