# One rule per scorer kind (curate.scoring.kinds): each writes the same per-chunk score file, so a
# selection or fusion reads any scorer alike; each kind's scorers are its rule's wildcard values.


rule score_chunk:
    input:
        unpack(get_scorer_inputs),
    output:
        scores=P("scores"),
        report=P("score_report"),
        embeddings=P("embeddings"),
    log:
        P.log("score_chunk", "pool", "scorer", "chunk"),
    wildcard_constraints:
        scorer=WS.scorers_of_kind("open_clip"),
    conda:
        "../envs/score.yaml"
    threads: config["threads"]
    params:
        batch_size=get_scorer_batch_size,
        contract=get_scorer_contract,
    script:
        "../scripts/score_chunk.py"


# BLIP / BLIP-2 image-text matching (MoS's scorers) through transformers, in the caption env
# (the transformers one); same batched reader and score-file format as score_chunk.
rule itm_score_chunk:
    input:
        unpack(get_scorer_inputs),
    output:
        scores=P("scores"),
        report=P("score_report"),
    log:
        P.log("itm_score_chunk", "pool", "scorer", "chunk"),
    wildcard_constraints:
        scorer=WS.scorers_of_kind("blip_itm"),
    conda:
        "../envs/caption.yaml"
    threads: config["threads"]
    params:
        head=lambda wildcards: config["scorers"][wildcards.scorer]["head"],
        batch_size=get_scorer_batch_size,
        contract=get_scorer_contract,
    script:
        "../scripts/itm_score_chunk.py"


rule sieve_score_chunk:
    input:
        unpack(get_scorer_inputs),
    output:
        scores=P("scores"),
    log:
        P.log("sieve_score_chunk", "pool", "scorer", "chunk"),
    wildcard_constraints:
        scorer=WS.scorers_of_kind("sieve"),
    conda:
        "../envs/caption.yaml"
    threads: config["threads"]
    params:
        batch_size=get_scorer_batch_size,
        contract=get_scorer_contract,
        scorer=lambda wildcards: config["scorers"][wildcards.scorer],
        sentence_encoder=lambda wildcards: config["sentence_encoders"][
            config["scorers"][wildcards.scorer]["sentence_encoder"]
        ],
    script:
        "../scripts/sieve_score_chunk.py"


rule embedding_score_chunk:
    input:
        unpack(get_scorer_inputs),
    output:
        scores=P("scores"),
    log:
        P.log("embedding_score_chunk", "pool", "scorer", "chunk"),
    wildcard_constraints:
        scorer=WS.scorers_of_kind("embedding"),
    conda:
        "../envs/fuse.yaml"
    params:
        scorer=lambda wildcards: config["scorers"][wildcards.scorer],
        contract=get_scorer_contract,
    script:
        "../scripts/embedding_score_chunk.py"


# A labelled set's images embedded by a CLIP scorer (NormSim's target, a classifier's positives,
# the image-based baseline's targets)
rule embed_dataset:
    input:
        unpack(get_embed_dataset_inputs),
    output:
        P("dataset_embeddings"),
    log:
        P.log("embed_dataset", "dataset", "scorer"),
    wildcard_constraints:
        scorer=WS.scorers_of_kind("open_clip"),
    conda:
        "../envs/score.yaml"
    threads: config["threads"]
    params:
        entry=lambda wildcards: config["datasets"][wildcards.dataset],
        batch_size=get_scorer_batch_size,
    script:
        "../scripts/embed_dataset.py"


rule embed_curated_set:
    input:
        curated_set=P("curated_set"),
        model=get_scorer_model,
    output:
        P("curated_embeddings"),
    log:
        P.log("embed_curated_set", "curated_set", "scorer"),
    wildcard_constraints:
        scorer=WS.scorers_of_kind("open_clip"),
    conda:
        "../envs/score.yaml"
    threads: config["threads"]
    params:
        batch_size=get_scorer_batch_size,
    script:
        "../scripts/embed_curated_set.py"


rule train_embedding_classifier:
    input:
        unpack(get_classifier_inputs),
    output:
        P("classifier"),
    log:
        P.log("train_embedding_classifier", "pool", "scorer"),
    conda:
        "../envs/train.yaml"
    params:
        scorer=lambda wildcards: config["scorers"][wildcards.scorer],
    script:
        "../scripts/train_embedding_classifier.py"


# An image encoder's embeddings of a chunk (Density-Based Pruning's DINOv2), at the same path a
# CLIP scorer's embeddings take, so a selection reads either alike; in the caption env (transformers).
rule embed_chunk:
    input:
        shards=get_chunk_input,
        model=lambda wildcards: WS.image_encoder_model(wildcards.scorer),
    output:
        embeddings=P("embeddings"),
        report=P("embedding_report"),
    log:
        P.log("embed_chunk", "pool", "scorer", "chunk"),
    wildcard_constraints:
        scorer=WS.image_encoders_of("transformers"),
    conda:
        "../envs/caption.yaml"
    threads: config["threads"]
    params:
        batch_size=config["caption_batch_size"],
    script:
        "../scripts/embed_chunk.py"
