rule train_captioner:
    input:
        curated_set=lambda wildcards: P(
            "curated_set",
            curated_set=config["captioners"][wildcards.captioner]["curated_set"],
        ),
    output:
        directory(P("captioner_model")),
    log:
        P.log("train_captioner", "captioner"),
    wildcard_constraints:
        captioner=WS.trained("captioners"),
    conda:
        "../envs/caption.yaml"
    threads: config["threads"]
    params:
        captioner=lambda wildcards: config["captioners"][wildcards.captioner],
    script:
        "../scripts/train_captioner.py"


# A captioner's folder: trained here, or a pretrained one's fetched (BLIP: converted) `models` entry.
rule caption_chunk:
    input:
        shards=get_chunk_input,
        model=get_captioner_model,
    output:
        captions=P("captions"),
        report=P("caption_report"),
    log:
        P.log("caption_chunk", "pool", "captioner", "chunk"),
    conda:
        "../envs/caption.yaml"
    threads: config["threads"]
    params:
        captioner=lambda wildcards: config["captioners"][wildcards.captioner],
        batch_size=config["caption_batch_size"],
    script:
        "../scripts/caption_chunk.py"


rule train_sentence_encoder:
    output:
        directory(P("sentence_encoder_model")),
    log:
        P.log("train_sentence_encoder", "sentence_encoder"),
    wildcard_constraints:
        sentence_encoder=WS.trained("sentence_encoders"),
    conda:
        "../envs/caption.yaml"
    threads: config["threads"]
    params:
        sentence_encoder=lambda wildcards: config["sentence_encoders"][
            wildcards.sentence_encoder
        ],
    script:
        "../scripts/train_sentence_encoder.py"
