"""The ``pickllm`` console script: ``pickllm bench`` output, files and error handling."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from pickllm.bench.report import WIDTH
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
    assert "lat s (simulated): mean latency per query in seconds" in out
    assert "thompson" in out
    assert err == ""
    assert max(len(line) for line in out.splitlines()) <= WIDTH


def test_bench_can_stream_the_whole_data_set(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--policies", "cheapest", "--seeds", "1", "--stream", "all", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("pickllm bench: routerbench_subset, test on the whole data set")
    assert "(3150 test / 2205 train prompts" in out
    assert "online learning over 1 stream(s) of the 3150 test prompts" in out


def test_no_progress_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str], user_csv: Path
) -> None:
    prices = _prices(user_csv.parent)
    args = ["bench", "--data", str(user_csv), "--policies", "random", "--seeds", "2"]
    assert main([*args, "--price-file", str(prices)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "random" in out


def test_progress_bar_on_a_terminal(
    capsys: pytest.CaptureFixture[str], user_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr("pickllm.cli._console", lambda: terminal)
    prices = _prices(user_csv.parent)
    args = ["bench", "--data", str(user_csv), "--policies", "random", "--seeds", "2"]
    assert main([*args, "--price-file", str(prices)]) == 0
    drawn = screen.getvalue()
    assert "pickllm bench: random (stream 2/2) done" in drawn
    assert "2/2" in drawn
    assert "\x1b[" in drawn  # drawn in place with terminal controls
    assert "pickllm bench" not in capsys.readouterr().out.splitlines()[-1]
    quiet = io.StringIO()
    terminal = Console(file=quiet, force_terminal=True, width=100)
    assert main([*args, "--price-file", str(prices), "--quiet"]) == 0
    assert quiet.getvalue() == ""


def test_every_line_of_the_report_fits_120_columns(
    capsys: pytest.CaptureFixture[str], user_csv: Path
) -> None:
    args = ["bench", "--data", str(user_csv), "--policies", "all", "--seeds", "1", "--quiet"]
    assert main([*args, "--price-file", str(_prices(user_csv.parent))]) == 0
    out = capsys.readouterr().out
    assert "linear_thompson" in out  # every method ran, with the longest names
    widths = {line: len(line) for line in out.splitlines()}
    assert max(widths.values()) <= WIDTH, max(widths, key=widths.__getitem__)


def _prices(folder: Path) -> Path:
    path = folder / "prices.csv"
    path.write_text(
        "model,input_price_usd_per_mtok,output_price_usd_per_mtok\nalpha,1,1\nbeta,5,5\n",
        encoding="utf-8",
    )
    return path


def test_json_has_one_object_per_method_with_numbers(tmp_path: Path, user_csv: Path) -> None:
    out = tmp_path / "report.json"
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


def test_plot_writes_the_format_its_extension_names(tmp_path: Path, user_csv: Path) -> None:
    args = ["bench", "--data", str(user_csv), "--policies", "random", "--seeds", "1", "--quiet"]
    svg = tmp_path / "bench.svg"
    assert main([*args, "--plot", str(svg)]) == 0
    assert "<svg" in svg.read_text(encoding="utf-8")[:1000]


def test_plot_without_matplotlib_is_a_clear_error_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    monkeypatch.setattr("pickllm.data.load_outcomes", _must_not_run)
    args = ["bench", "--policies", "per_task", "--quiet", "--plot", str(tmp_path / "x.png")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "argument --plot: plotting needs matplotlib" in err
    assert "pickllm[plot]" in err


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("the data was loaded before the options were checked")


@pytest.mark.parametrize(
    ("option", "name", "message"),
    [
        ("--plot", "bench.txt", "argument --plot: cannot write a figure as"),
        ("--plot", "bench", "end the name with one of"),
        ("--plot", "missing/bench.png", "argument --plot: folder"),
        ("--json", "missing/report.json", "argument --json: folder"),
        ("--json", ".", "argument --json:"),
    ],
)
def test_bad_output_paths_are_refused_before_the_run(  # noqa: PLR0917 - pytest fixtures
    option: str,
    name: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("pickllm.data.load_outcomes", _must_not_run)
    assert main(["bench", option, str(tmp_path / name)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("pickllm bench: error: ")
    assert message in err
    assert str(tmp_path) in err  # the path is named
    assert "Traceback" not in err
    assert not (tmp_path / "missing").exists()  # no folder is created


def test_an_unwritable_output_folder_is_refused_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The suite may run as root, for whom every folder is writable: deny it the access.
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != tmp_path and real_access(path, mode)
    )
    monkeypatch.setattr("pickllm.data.load_outcomes", _must_not_run)
    assert main(["bench", "--json", str(tmp_path / "report.json")]) == 2
    err = capsys.readouterr().err
    assert f"argument --json: '{tmp_path / 'report.json'}' is not writable" in err


def test_an_interrupt_is_one_line_and_status_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pickllm.data.load_outcomes", interrupted)
    assert main(["bench", "--quiet"]) == 130
    assert capsys.readouterr().err == "pickllm bench: interrupted\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policies", "nope"], "unknown policy 'nope'; online policies: "),
        (["--data", "missing.csv"], "available: llmrouter_9llm, routerbench_subset"),
        (["--test-split", "dev"], "no rows with split 'dev'; available: test, train"),
        (["--split-column", "fold", "--test-split", "9"], "available: 0, 1, 2, 3, 4"),
        (["--objective", "speed=1"], "objective term 'speed=1'"),
        (["--seeds", "0"], "argument --seeds: must be an int >= 1, got '0'"),
        (["--seed", "-2"], "argument --seed: must be an int >= 0, got '-2'"),
        (["--seeds", "x"], "argument --seeds: must be an int >= 1, got 'x'"),
    ],
)
def test_user_errors_exit_2_with_one_line_and_no_traceback(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    # One error line, last (argparse's own errors print the usage above it).
    assert err.splitlines()[-1].startswith("pickllm bench: error: ")
    assert message in err.splitlines()[-1]
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
    assert [f.__name__ for f in SUBCOMMANDS] == [
        "_add_bench",
        "_add_stats",
        "_add_train",
        "_add_ope",
    ]
