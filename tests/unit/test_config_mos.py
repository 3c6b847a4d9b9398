"""MoS's strategies, recipes and suites in config.yaml (their schema and reference errors are
tested with the others' in test_config.py; the default config's validity there too)."""


def test_the_mos_entries_are_there(config):
    assert {"mos-clip", "tiny-mos-clip", "mos-llava", "tiny-mos-llava"} <= set(config["recipes"])
    assert {"mos-clip", "mos-llava", "synthetic-captioning"} <= set(config["suites"])
    clip = config["recipes"]["mos-clip"]
    assert (clip["model"], clip["epochs"], clip["batch_size"], clip["lr"], clip["wd"], clip["warmup_epochs"]) == (
        "ViT-B-32",
        32,
        2048,
        1e-4,
        0.2,
        1,
    )
    llava = config["recipes"]["mos-llava"]
    assert (llava["epochs"], llava["batch_size"], llava["lr"], llava["wd"]) == (1, 256, 1e-3, 0.0)
    methods = {entry["method"] for entry in config["selections"].values()}
    assert {"drop_lowest", "sample_weighting", "recaption"} <= methods
