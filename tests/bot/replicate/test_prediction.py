"""Reading progress and the seed out of the model's logs."""

from bot.replicate.prediction import Prediction, Progress

FLUX_LOGS = (
    "Using seed: 41234\nPrompt: a beautiful castle frstingln illustration\ntxt2img mode\n"
    "Downloading LoRA weights from - HF path: alvdansen/frosting_lane_flux\n"
    "Loading LoRA took: 3.21 seconds\n"
    "  0%|          | 0/28 [00:00<?, ?it/s]\n"
    " 50%|█████     | 14/28 [00:03<00:03,  3.86it/s]\n"
)


def test_progress_is_the_last_bar():
    progress = Progress.from_logs(FLUX_LOGS)
    assert (progress.step, progress.total, progress.percent, progress.seed) == (14, 28, 50, 41234)


def test_carriage_return_updates_count_too():
    logs = "Using seed: 7\r  4%|▍         | 1/23 [00:00<00:05]\r 57%|█████▋    | 13/23 [00:03<]"
    assert Progress.from_logs(logs) == Progress(step=13, total=23, percent=57, seed=7)


def test_no_bar_yet_still_gives_the_seed():
    assert Progress.from_logs("Using seed: 99\nPrompt: x\n") == Progress(seed=99)


def test_empty_or_missing_logs():
    assert Progress.from_logs("") == Progress()
    assert Progress.from_logs(None) == Progress()


def test_prediction_tolerates_the_api_variations():
    p = Prediction.from_json({"id": "abc", "status": "canceled", "logs": None, "output": None,
                              "metrics": {"predict_time": 2.5}})
    assert p.logs == "" and p.output == [] and p.predict_time == 2.5
    single = Prediction.from_json({"id": "abc", "status": "succeeded", "output": "https://x/1"})
    assert single.output == ["https://x/1"]
    assert Prediction.from_json({"id": "abc", "status": "starting"}).predict_time is None
