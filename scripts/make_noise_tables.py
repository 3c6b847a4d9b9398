from curate.data.records import read_records
from curate.data.subset import load_subset
from curate.reporting.noise import noise_harm_table, noise_kept_table, precision_vs_average, run_metrics
from curate.reporting.tables import load_ground_truth, selection_quality, write_table
from curate.workflow.job import job

with job(snakemake) as log:
    rule, rows = snakemake.rule, snakemake.params.rows
    if rule == "noise_kept":
        truth = load_ground_truth(list(snakemake.input.ground_truth))
        subsets = {row["selection"]: load_subset(row["subset"]) for row in rows}
        table = noise_kept_table([{"selection": row["selection"]} for row in rows], subsets, truth)
    elif rule == "precision_vs_average":
        truth = load_ground_truth(list(snakemake.input.ground_truth))
        groups = snakemake.params.groups
        measured = []
        for row in rows:
            quality = selection_quality(load_subset(row["subset"]), truth)
            averages = [run_metrics(read_records(p), groups)["Average"] for p in row["evaluations"]]
            measured.append({"selection": row["selection"], **quality, "averages": averages})
        table, (rho, low, high) = precision_vs_average(measured)
        table["spearman_rho"], table["rho_lo95"], table["rho_hi95"] = rho, low, high
        log.info("Spearman rho of precision against Average: %.3f [%.3f, %.3f]", rho, low, high)
    else:  # noise_harm
        groups = snakemake.params.groups
        per_seed, labels = {}, {}
        for row in rows:
            runs = []
            for i, path in enumerate(row["evaluations"]):
                run = run_metrics(read_records(path), groups)
                if row.get("probes"):  # the probe suite's tasks, by their acc1 (not its Average)
                    run |= {r["key"]: float(r["metrics"]["acc1"]) for r in read_records(row["probes"][i])}
                runs.append(run)
            per_seed[row["selection"]] = runs
            labels[row["selection"]] = {"noise_type": row["noise_type"], "share": row["share"]}
        table = noise_harm_table(per_seed, labels, control=rows[0]["selection"])
    write_table(table, snakemake.output[0])
    log.info("%s:\n%s", rule, table.to_string())
