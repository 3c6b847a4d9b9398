rule select_subset:
    input:
        unpack(get_selection_inputs),
    output:
        subset=P("subset"),
    log:
        P.log("select_subset", "pool", "selection"),
    conda:
        "../envs/fuse.yaml"
    params:
        selection=get_selection_params,
        score_contract=get_selection_score_contract,
    script:
        "../scripts/select_subset.py"


rule reshard_subset:
    input:
        unpack(get_reshard_inputs),
        subset=P("subset"),
        pool=get_chunk_inputs,
    output:
        directory(P("reshard")),
    log:
        P.log("reshard_subset", "pool", "selection"),
    conda:
        "../envs/download.yaml"
    params:
        reshard=config["reshard"],
    script:
        "../scripts/reshard_subset.py"


rule sample_weights:
    input:
        scores=get_strategy_scores,
    output:
        P("sample_weights"),
    log:
        P.log("sample_weights", "pool", "selection"),
    wildcard_constraints:
        selection=WS.selections_of("sample_weighting"),
    conda:
        "../envs/fuse.yaml"
    params:
        selection=get_selection_params,
        score_contract=get_selection_score_contract,
    script:
        "../scripts/sample_weights.py"


rule recaption_texts:
    input:
        scores=get_strategy_scores,
        captions=get_recaption_captions,
    output:
        P("recaptions"),
    log:
        P.log("recaption_texts", "pool", "selection"),
    wildcard_constraints:
        selection=WS.selections_of("recaption"),
    conda:
        "../envs/fuse.yaml"
    params:
        selection=get_selection_params,
        score_contract=get_selection_score_contract,
    script:
        "../scripts/recaption_texts.py"
