rule score_chunk:
    input:
        shards=get_chunk_shards,
        model=get_scorer_model,
    output:
        scores=f"{DATA}/scores/{{pool}}/{{scorer}}/{{chunk}}.parquet",
        report=f"{DATA}/scores/{{pool}}/{{scorer}}/{{chunk}}.report.json",
        embeddings=f"{DATA}/embeddings/{{pool}}/{{scorer}}/{{chunk}}.npz",
    log:
        f"{DATA}/logs/score_chunk/{{pool}}/{{scorer}}/{{chunk}}.log",
    wildcard_constraints:
        scorer=scorers_of("open_clip"),
    conda:
        "../envs/score.yaml"
    threads: config["threads"]
    params:
        batch_size=config.get("score_batch_size", 256),
    script:
        "../scripts/score_chunk.py"


# BLIP / BLIP-2 image-text matching (MoS's scorers) through transformers, in the caption env
# (the transformers one); same batched reader and score-file format as score_chunk.
rule itm_score_chunk:
    input:
        shards=get_chunk_shards,
        model=get_scorer_model,
    output:
        scores=f"{DATA}/scores/{{pool}}/{{scorer}}/{{chunk}}.parquet",
        report=f"{DATA}/scores/{{pool}}/{{scorer}}/{{chunk}}.report.json",
    log:
        f"{DATA}/logs/itm_score_chunk/{{pool}}/{{scorer}}/{{chunk}}.log",
    wildcard_constraints:
        scorer=scorers_of("blip_itm"),
    conda:
        "../envs/caption.yaml"
    threads: config["threads"]
    params:
        head=lambda wildcards: config["scorers"][wildcards.scorer]["head"],
        batch_size=lambda wildcards: config["scorers"][wildcards.scorer].get(
            "batch_size", config.get("score_batch_size", 256)
        ),
    script:
        "../scripts/itm_score_chunk.py"


rule sieve_score_chunk:
    input:
        captions=get_caption_file,
        sentence_encoder=get_sentence_encoder,
    output:
        scores=f"{DATA}/scores/{{pool}}/{{scorer}}/{{chunk}}.parquet",
    log:
        f"{DATA}/logs/sieve_score_chunk/{{pool}}/{{scorer}}/{{chunk}}.log",
    wildcard_constraints:
        scorer=scorers_of("sieve"),
    conda:
        "../envs/caption.yaml"
    threads: config["threads"]
    params:
        batch_size=config.get("score_batch_size", 256),
    script:
        "../scripts/sieve_score_chunk.py"


rule embedding_score_chunk:
    input:
        unpack(get_embedding_score_inputs),
    output:
        scores=f"{DATA}/scores/{{pool}}/{{scorer}}/{{chunk}}.parquet",
    log:
        f"{DATA}/logs/embedding_score_chunk/{{pool}}/{{scorer}}/{{chunk}}.log",
    wildcard_constraints:
        scorer=scorers_of("embedding"),
    conda:
        "../envs/fuse.yaml"
    params:
        scorer=lambda wildcards: config["scorers"][wildcards.scorer],
    script:
        "../scripts/embedding_score_chunk.py"


rule embed_downstream_set:
    input:
        downstream=f"{DATA}/downstream/{{suite}}.npz",
        model=get_scorer_model,
    output:
        f"{DATA}/embeddings/downstream/{{suite}}/{{scorer}}.npz",
    log:
        f"{DATA}/logs/embed_downstream_set/{{suite}}/{{scorer}}.log",
    wildcard_constraints:
        scorer=scorers_of("open_clip"),
    conda:
        "../envs/score.yaml"
    threads: config["threads"]
    params:
        batch_size=config.get("score_batch_size", 256),
    script:
        "../scripts/embed_downstream_set.py"


rule embed_curated_set:
    input:
        curated_set=f"{DATA}/resources/curated/{{curated_set}}",
        model=get_scorer_model,
    output:
        f"{DATA}/embeddings/curated/{{curated_set}}/{{scorer}}.npz",
    log:
        f"{DATA}/logs/embed_curated_set/{{curated_set}}/{{scorer}}.log",
    wildcard_constraints:
        scorer=scorers_of("open_clip"),
    conda:
        "../envs/score.yaml"
    threads: config["threads"]
    params:
        batch_size=config.get("score_batch_size", 256),
    script:
        "../scripts/embed_curated_set.py"


rule train_embedding_classifier:
    input:
        unpack(get_classifier_inputs),
    output:
        f"{DATA}/scores/{{pool}}/{{scorer}}/classifier.npz",
    log:
        f"{DATA}/logs/train_embedding_classifier/{{pool}}/{{scorer}}.log",
    conda:
        "../envs/train.yaml"
    params:
        scorer=lambda wildcards: config["scorers"][wildcards.scorer],
    script:
        "../scripts/train_embedding_classifier.py"
