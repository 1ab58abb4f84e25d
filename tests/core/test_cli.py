"""The ``pickllm`` console script: ``pickllm bench`` output, files and error handling."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pickllm.cli import SUBCOMMANDS, main

USER_CSV = "\n".join(
    [
        "prompt_id,task,split,fold,prompt,model,quality",
        *(
            f"p{i},{'a' if i % 2 else 'b'},{'test' if i >= 12 else 'train'},{i % 3},"
            f"question {i},{model},{(i * (j + 1)) % 3 == 0:d}"
            for i in range(20)
            for j, model in enumerate(("alpha", "beta"))
        ),
    ]
)


@pytest.fixture
def user_csv(tmp_path: Path) -> Path:
    path = tmp_path / "mine.csv"
    path.write_text(USER_CSV + "\n", encoding="utf-8")
    return path


def test_bench_on_the_default_data_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--policies", "per_task,thompson", "--seeds", "1", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("pickllm bench: routerbench_subset, test on split=test (945 test")
    oracle = next(line for line in out.splitlines() if line.startswith("oracle "))
    gpt4 = next(line for line in out.splitlines() if line.startswith("gpt-4-1106-preview "))
    assert " 97.57 " in oracle
    assert " 87.94 " in gpt4
    assert "latency s (simulated)" in out
    assert "thompson" in out
    assert err == ""


def test_bench_can_stream_the_whole_data_set(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--policies", "cheapest", "--seeds", "1", "--stream", "all", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("pickllm bench: routerbench_subset, test on the whole data set")
    assert "(3150 test / 2205 train prompts" in out
    assert "online learning over 1 stream(s) of the 3150 test prompts" in out


def test_progress_goes_to_stderr(capsys: pytest.CaptureFixture[str], user_csv: Path) -> None:
    prices = _prices(user_csv.parent)
    args = ["bench", "--data", str(user_csv), "--policies", "random", "--seeds", "2"]
    code = main([*args, "--price-file", str(prices)])
    assert code == 0
    err = capsys.readouterr().err
    assert "[1/2] random (stream 1/2)" in err
    assert "[2/2] random (stream 2/2)" in err


def _prices(folder: Path) -> Path:
    path = folder / "prices.csv"
    path.write_text(
        "model,input_price_usd_per_mtok,output_price_usd_per_mtok\nalpha,1,1\nbeta,5,5\n",
        encoding="utf-8",
    )
    return path


def test_json_has_one_object_per_method_with_numbers(tmp_path: Path, user_csv: Path) -> None:
    out = tmp_path / "new-folder" / "report.json"  # the folder is created
    code = main(
        [
            "bench",
            "--data",
            str(user_csv),
            "--policies",
            "per_task,random",
            "--seeds",
            "2",
            "--json",
            str(out),
            "--price-file",
            str(_prices(tmp_path)),
            "--objective",
            "quality=1,cost=0.5,latency=0.1",
            "--quiet",
        ]
    )
    assert code == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert {"alpha", "beta", "random_model", "best_single", "oracle", "per_task", "random"} <= set(
        data["results"]
    )
    assert data["data"]["cost"] == "estimated"
    assert data["data"]["latency"] == "simulated"
    assert data["objective"]["latency"] == 0.1
    assert isinstance(data["results"]["oracle"]["accuracy"], float)
    assert data["results"]["random"]["online"]["seeds"] == 2


def test_missing_prices_warn_once_and_still_report_quality(
    capsys: pytest.CaptureFixture[str], user_csv: Path
) -> None:
    assert main(["bench", "--data", str(user_csv), "--policies", "per_task", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err.count("warning:") == 1
    assert "no cost for model(s) alpha, beta" in err
    assert "$/query (unavailable)" in out
    assert "note: cost unavailable" in out


def test_split_by_fold(capsys: pytest.CaptureFixture[str], user_csv: Path) -> None:
    args = ["bench", "--data", str(user_csv), "--policies", "per_task", "--quiet"]
    args += ["--split-column", "fold", "--test-split", "1"]
    assert main(args) == 0
    assert "test on fold=1" in capsys.readouterr().out


def test_plot_writes_a_png(tmp_path: Path) -> None:
    png = tmp_path / "bench.png"
    args = ["bench", "--policies", "per_task,random", "--seeds", "1", "--quiet"]
    assert main([*args, "--plot", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_plot_without_matplotlib_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    args = ["bench", "--policies", "per_task", "--quiet", "--plot", str(tmp_path / "x.png")]
    assert main(args) == 2
    assert "pickllm[plot]" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policies", "nope"], "unknown policy 'nope'; online policies: "),
        (["--data", "missing.csv"], "available: llmrouter_9llm, routerbench_subset"),
        (["--test-split", "dev"], "no rows with split 'dev'; available: test, train"),
        (["--split-column", "fold", "--test-split", "9"], "available: 0, 1, 2, 3, 4"),
        (["--objective", "speed=1"], "objective term 'speed=1'"),
        (["--seeds", "0"], "seeds must be an int >= 1"),
    ],
)
def test_user_errors_exit_2_with_one_line_and_no_traceback(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pickllm bench: error: ")
    assert message in err
    assert "Traceback" not in err


def test_malformed_file_names_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt_id,model,quality\np,a,2\n", encoding="utf-8")
    assert main(["bench", "--data", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line 2, column 'quality'" in err


def test_argparse_errors_and_help_return_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--split-column", "column"]) == 2
    assert "invalid choice: 'column' (choose from split, fold)" in capsys.readouterr().err.replace(
        "'split', 'fold'", "split, fold"
    )
    assert main([]) == 2
    assert "bench" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert main(["bench", "--help"]) == 0
    assert "--price-file" in capsys.readouterr().out


def test_subcommands_are_one_function_each() -> None:
    assert [f.__name__ for f in SUBCOMMANDS] == ["_add_bench", "_add_train"]
