# One rule per scorer kind (curate.scoring.kinds): each writes the same per-chunk score file, so a
# selection or fusion reads any scorer alike; each kind's scorers are its rule's wildcard values.
# The scorers of config `score_group` are scored together instead: one job per chunk for all of a
# kind (score_group_chunk, itm_score_group_chunk), each image read and decoded once by the loader's
# workers (config loader_workers, on top of the job's threads), then every model on the job's device.

if WS.score_group("open_clip"):

    rule score_group_chunk:
        input:
            unpack(get_group_inputs("open_clip")),
        output:
            WS.group_outputs("open_clip"),
        log:
            P.log("score_group_chunk", "pool", "chunk"),
        conda:
            "../envs/score.yaml"
        threads: config["threads"] + config["loader_workers"]
        params:
            kind="open_clip",
            scorers=WS.score_group("open_clip"),
            batch_size=WS.group_batch_size("open_clip"),
            contracts=[WS.score_contract(s) for s in WS.score_group("open_clip")],
        script:
            "../scripts/score_group_chunk.py"


if WS.score_group("blip_itm"):

    rule itm_score_group_chunk:
        input:
            unpack(get_group_inputs("blip_itm")),
        output:
            WS.group_outputs("blip_itm"),
        log:
            P.log("itm_score_group_chunk", "pool", "chunk"),
        conda:
            "../envs/caption.yaml"
        threads: config["threads"] + config["loader_workers"]
        params:
            kind="blip_itm",
            scorers=WS.score_group("blip_itm"),
            heads=[config["scorers"][s]["head"] for s in WS.score_group("blip_itm")],
            batch_size=WS.group_batch_size("blip_itm"),
            contracts=[WS.score_contract(s) for s in WS.score_group("blip_itm")],
        script:
            "../scripts/score_group_chunk.py"


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
        scorer=WS.single_scorers_of_kind("open_clip"),
    conda:
        "../envs/score.yaml"
    threads: config["threads"] + config["loader_workers"]
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
        scorer=WS.single_scorers_of_kind("blip_itm"),
    conda:
        "../envs/caption.yaml"
    threads: config["threads"] + config["loader_workers"]
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


# `library: metadata` scorers: a column of the pool's metadata (DataComp's OpenAI CLIP scores) read
# for the chunk's downloaded samples, no model; their embeddings, the metadata's .npz features, by
# a job of their own (only what reads embeddings asks for it).
rule metadata_score_chunk:
    input:
        unpack(get_scorer_inputs),
    output:
        scores=P("scores"),
        report=P("score_report"),
    log:
        P.log("metadata_score_chunk", "pool", "scorer", "chunk"),
    wildcard_constraints:
        scorer=WS.scorers_of_kind("metadata"),
    conda:
        "../envs/fuse.yaml"
    params:
        scorer=lambda wildcards: config["scorers"][wildcards.scorer],
        contract=get_scorer_contract,
        pool_shards=lambda wildcards: config["pools"][wildcards.pool]["n_shards"],
    script:
        "../scripts/metadata_score_chunk.py"


rule metadata_embed_chunk:
    input:
        unpack(get_scorer_inputs),
    output:
        P("embeddings"),
    log:
        P.log("metadata_embed_chunk", "pool", "scorer", "chunk"),
    wildcard_constraints:
        scorer=WS.metadata_scorers_with_features(),
    conda:
        "../envs/fuse.yaml"
    params:
        scorer=lambda wildcards: config["scorers"][wildcards.scorer],
        pool_shards=lambda wildcards: config["pools"][wildcards.pool]["n_shards"],
    script:
        "../scripts/metadata_embed_chunk.py"


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


# HYPE (curate.scoring.hype): a hyperbolic CLIP's -d_L and image and text specificity, three
# columns of one file; the released weights (`source: pretrained`) or a tiny one trained here.
rule hype_score_chunk:
    input:
        unpack(get_scorer_inputs),
    output:
        scores=P("scores"),
        report=P("score_report"),
    log:
        P.log("hype_score_chunk", "pool", "scorer", "chunk"),
    wildcard_constraints:
        scorer=WS.scorers_of_kind("hyperbolic_clip"),
    conda:
        "../envs/score.yaml"
    threads: config["threads"]
    params:
        batch_size=get_scorer_batch_size,
        contract=get_scorer_contract,
    script:
        "../scripts/hype_score_chunk.py"


# One column of another scorer's chunk files as a scorer of its own (HYPE's three scores as
# FLYT's three inputs).
rule column_score_chunk:
    input:
        unpack(get_scorer_inputs),
    output:
        scores=P("scores"),
    log:
        P.log("column_score_chunk", "pool", "scorer", "chunk"),
    wildcard_constraints:
        scorer=WS.scorers_of_kind("column"),
    conda:
        "../envs/fuse.yaml"
    params:
        column=lambda wildcards: config["scorers"][wildcards.scorer]["column"],
        contract=get_scorer_contract,
        parent_contract=lambda wildcards: WS.score_contract(
            config["scorers"][wildcards.scorer]["scorer"]
        ),
    script:
        "../scripts/column_score_chunk.py"
