//! The `sensorflow` command.

mod cli;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use anyhow::Context;
use cli::{Cli, Command};
use sensorflow::tools::bridge::{run_bridge, BridgeConfig};
use sensorflow::tools::simulate::{labels_path_for, simulate_to, Format, Output};
use sensorflow_operators::LikelihoodParams;

fn main() -> ExitCode {
    fail_stop_on_lost_peers();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("sensorflow: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn report(rows: Vec<sensorflow_models::detector::evaluate::ReportRow>) -> Result<()> {
    anyhow::ensure!(!rows.is_empty(), "no report rows were produced");
    Ok(())
}

/// The calibration `evaluate --calibration` asks for, given the model card's.
fn calibration_for(arg: cli::CalibrationArg, card: Option<LikelihoodParams>) -> Option<LikelihoodParams> {
    match arg {
        cli::CalibrationArg::Card => card,
        cli::CalibrationArg::None => None,
        cli::CalibrationArg::Likelihood => Some(Default::default()),
        cli::CalibrationArg::NoRange => Some(LikelihoodParams { range: None, ..card.unwrap_or_default() }),
        cli::CalibrationArg::NoExcursions => {
            Some(LikelihoodParams { excursions: None, ..card.unwrap_or_default() })
        }
        cli::CalibrationArg::RangeOnly => {
            let range = card.unwrap_or_default().range.unwrap_or_default();
            // A likelihood whose warm-up never ends always says 0.
            Some(LikelihoodParams { warmup: u64::MAX, range: Some(range), ..LikelihoodParams::default() })
        }
    }
}

/// The model `evaluate` scores (with `--threshold` applied) and the calibration it asks for.
fn load_for_evaluation(
    args: &cli::EvaluateArgs,
) -> Result<(sensorflow_models::detector::inference::StudentScorer, Option<LikelihoodParams>)> {
    let mut scorer = sensorflow_models::detector::artifact::load_scorer(&args.dir, &args.model)?;
    if let Some(t) = args.threshold {
        scorer.threshold = t;
    }
    let calibration = calibration_for(args.calibration, scorer.calibration);
    Ok((scorer, calibration))
}

/// The per-profile score table of `evaluate`.
fn print_scores(scores: &[sensorflow_models::nab::ProfileScore]) {
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "profile", "score", "raw", "threshold", "TP rows", "FP rows"
    );
    for s in scores {
        println!(
            "{:<22} {:>10.2} {:>10.3} {:>10.4} {:>8} {:>8}",
            s.profile, s.normalized, s.raw, s.threshold, s.counts.tp, s.counts.fp
        );
    }
}

/// `evaluate --synthetic SEED`: the model on the synthetic NAB-like corpus (no NAB needed).
fn evaluate_synthetic(args: &cli::EvaluateArgs, seed: u64) -> Result<()> {
    use sensorflow_models::detector::evaluate as ev;
    use sensorflow_models::nab;
    let (scorer, calibration) = load_for_evaluation(args)?;
    let (files, windows) =
        sensorflow_models::detector::data::synthetic_nab(seed, ev::SYNTHETIC_FILES, ev::SYNTHETIC_ROWS);
    let outputs =
        ev::synthetic_outputs(&scorer.mlp, scorer.mlp.window, scorer.threshold, calibration, &files);
    let scores = nab::score_corpus(&outputs, &windows, &nab::standard_profiles());
    println!("synthetic NAB-like corpus (seed {seed}), model {}, calibration {calibration:?}:", args.model);
    print_scores(&scores);
    if args.per_file {
        if let Some(standard) = scores.iter().find(|s| s.profile == "standard") {
            let kinds = ev::detection_by_kind(&files, &outputs, &windows, standard.threshold);
            print_by_kind(&kinds, standard.threshold);
        }
    }
    Ok(())
}

fn evaluate(args: cli::EvaluateArgs) -> Result<()> {
    use sensorflow_models::nab;
    if let (Some(seed), None) = (args.synthetic, &args.results) {
        return evaluate_synthetic(&args, seed);
    }
    let root = args.nab.clone().or_else(cli::default_nab).context("no NAB corpus found; pass --nab DIR")?;
    let windows = nab::load_windows(&root.join("labels/combined_windows.json"))?;
    let profiles = nab::load_profiles(&root.join("config/profiles.json"))?;
    let (name, outputs) = match &args.results {
        Some(dir) => (dir.display().to_string(), nab::read_results(dir)?),
        None => {
            let (scorer, calibration) = load_for_evaluation(&args)?;
            let outputs = sensorflow_models::detector::evaluate::nab_outputs(
                &scorer.mlp,
                &root,
                scorer.mlp.window,
                scorer.threshold,
                calibration,
            )?;
            (args.model.clone(), outputs)
        }
    };
    let scores = nab::score_corpus(&outputs, &windows, &profiles);
    println!("NAB v1.1 scores of {name}:");
    print_scores(&scores);
    if args.per_file {
        if let Some((profile, best)) = profiles
            .iter()
            .zip(&scores)
            .find(|(p, _)| p.name == "standard")
            .or(profiles.iter().zip(&scores).next())
        {
            let mut files = nab::score_files(&outputs, &windows, profile, best.threshold);
            files.sort_by(|a, b| a.raw.total_cmp(&b.raw));
            println!("\nper file ({} profile, threshold {:.4}), worst first:", profile.name, best.threshold);
            println!("{:<62} {:>7} {:>8} {:>12} {:>8}", "file", "windows", "detected", "false alarms", "raw");
            for f in &files {
                println!(
                    "{:<62} {:>7} {:>8} {:>12} {:>8.3}",
                    f.file, f.windows, f.detected, f.false_alarms, f.raw
                );
            }
            let (w, d, fa) = files
                .iter()
                .fold((0, 0, 0), |(w, d, fa), f| (w + f.windows, d + f.detected, fa + f.false_alarms));
            println!("{:<62} {w:>7} {d:>8} {fa:>12} {:>8.3}", "total", best.raw);
        }
    }
    if let Some(dir) = &args.plot {
        let standard = scores.iter().find(|s| s.profile == "standard").map(|s| s.threshold);
        plot_evaluation(dir, &args.dir, &outputs, &windows, standard)?;
    }
    if let Some(out) = &args.write_results {
        let with: Vec<(nab::Profile, f64)> =
            profiles.iter().cloned().zip(scores.iter().map(|s| s.threshold)).collect();
        let detector = name.rsplit('/').next().unwrap_or("sensorflow").to_string();
        nab::write_results(out, &detector, &outputs, &windows, &with)?;
        println!("per-row results written under {}", out.join(&detector).display());
    }
    Ok(())
}

/// `evaluate --plot DIR`: one PNG per file and the optimization report's chart.
fn plot_evaluation(
    dir: &std::path::Path,
    model_dir: &std::path::Path,
    outputs: &[sensorflow_models::nab::FileOutput],
    windows: &sensorflow_models::nab::Windows,
    threshold: Option<f64>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut meter = sensorflow::observe::progress::Meter::new(
        "plot",
        Some(outputs.len() as u64),
        "files",
        std::time::Duration::from_secs(5),
    );
    for (i, out) in outputs.iter().enumerate() {
        let labelled = windows.get(&out.file).map(Vec::as_slice).unwrap_or(&[]);
        sensorflow::tools::plot::plot_file(dir, out, labelled, threshold)?;
        meter.set(i as u64 + 1, String::new);
    }
    meter.finish();
    let report = model_dir.join("report.json");
    let mut drawn = outputs.len();
    if report.exists() {
        let text =
            std::fs::read_to_string(&report).with_context(|| format!("reading {}", report.display()))?;
        let rows: Vec<sensorflow_models::detector::evaluate::ReportRow> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an optimization report", report.display()))?;
        sensorflow::tools::plot::plot_report(&dir.join("report.png"), &rows)?;
        drawn += 1;
    }
    println!("{drawn} plots written to {}", dir.display());
    Ok(())
}

/// timely is fail-stop: when a peer process disappears, its network threads panic with
/// "timely communication error". Turn that into a clear message and a prompt exit (3) instead
/// of workers waiting forever for data that will not come.
fn fail_stop_on_lost_peers() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("timely communication error") {
            eprintln!("sensorflow: error: lost the connection to a peer process ({msg}); stopping");
            std::process::exit(3);
        }
        default(info);
    }));
}

/// `sensorflow bench`.
fn bench(args: cli::BenchArgs) -> Result<()> {
    use sensorflow::connectors::SourceConfig;
    use sensorflow::tools::bench;
    let mut rows = Vec::new();
    let rules = bench::hot_rules(&args.dir)?;
    let planned: usize =
        args.workloads.iter().map(|w| if w == "l" { args.rates.len() } else { args.workers.len() }).sum();
    let mut meter = sensorflow::observe::progress::Meter::new(
        "bench",
        Some(planned as u64),
        "rows",
        std::time::Duration::ZERO,
    );
    for w in &args.workloads {
        let before = rows.len();
        match w.as_str() {
            "w1" => {
                let path = bench::log_dataset(&args.dir, args.events)?;
                for &n in &args.workers {
                    let source = SourceConfig::Log { path: path.clone(), realtime: None };
                    rows.push(bench::run_w("W1 log → windows → rule", source, &rules, n, "none")?);
                }
            }
            "w2" | "w3" => {
                let path = bench::json_dataset(&args.dir, args.events)?;
                let (name, model) = if w == "w2" {
                    ("W2 JSON → windows → rule", "none")
                } else {
                    ("W3 W2 + anomaly model", "default")
                };
                for &n in &args.workers {
                    let source = SourceConfig::Jsonl { paths: vec![path.clone()] };
                    rows.push(bench::run_w(name, source, &rules, n, model)?);
                }
            }
            "l" => {
                for &rate in &args.rates {
                    rows.push(bench::latency(&args.dir, rate, args.secs, args.tick_ms, 2)?);
                }
            }
            other => anyhow::bail!("unknown workload {other:?} (w1, w2, w3, l)"),
        }
        if rows.len() > before {
            meter.set(rows.len() as u64, || format!("{w} done"));
        }
    }
    meter.finish();
    bench::print_table("sensorflow bench", &rows);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let json = serde_json::json!({
        "machine": { "cpu": cpu, "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "version": env!("CARGO_PKG_VERSION"),
        "rows": rows,
    });
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("results written to {}", args.out.display());
    Ok(())
}

/// Runs `args.command` in `args.processes` local processes joined into one timely cluster.
fn cluster(args: cli::ClusterArgs) -> Result<()> {
    use std::process::{Command as Proc, Stdio};
    anyhow::ensure!(args.processes >= 1, "--processes must be at least 1");
    anyhow::ensure!(
        matches!(args.command.first().map(String::as_str), Some("run" | "replay")),
        "the command after -- must be `run ...` or `replay ...`"
    );
    let ports: Vec<u16> = (0..args.processes)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()))
        .collect::<std::io::Result<_>>()
        .context("finding free ports")?;
    let hostfile = std::env::temp_dir().join(format!("sensorflow-cluster-{}.hosts", std::process::id()));
    let text: String = ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
    std::fs::write(&hostfile, text).with_context(|| format!("writing {}", hostfile.display()))?;
    let exe = std::env::current_exe().context("finding the sensorflow executable")?;
    let mut children = Vec::new();
    let mut forwarders = Vec::new();
    for i in 0..args.processes {
        let child = Proc::new(&exe)
            .args(&args.command)
            .args(["--processes", &args.processes.to_string(), "--process", &i.to_string()])
            .args(["--workers", &args.workers.to_string(), "--hostfile"])
            .arg(&hostfile)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting process {i}"))?;
        eprintln!("cluster: process {i} is pid {}", child.id());
        let mut child = child;
        if let Some(out) = child.stdout.take() {
            forwarders.push(std::thread::spawn(move || forward_lines(out)));
        }
        children.push(Some(child));
    }
    let mut failed: Option<(usize, std::process::ExitStatus)> = None;
    while children.iter().any(Option::is_some) {
        for (i, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            if let Some(status) = child.try_wait().context("waiting for a process")? {
                *slot = None;
                if !status.success() && failed.is_none() {
                    failed = Some((i, status));
                }
            }
        }
        if failed.is_some() {
            for child in children.iter_mut().flatten() {
                let _ = child.kill();
                let _ = child.wait();
            }
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for f in forwarders {
        let _ = f.join();
    }
    let _ = std::fs::remove_file(&hostfile);
    match failed {
        Some((i, status)) => anyhow::bail!("process {i} failed ({status}); stopped the others"),
        None => Ok(()),
    }
}

/// Copies a child's standard output to ours line by line (whole lines, so processes do not
/// interleave mid-line), moving timely's connection messages, which it prints on standard
/// output, to standard error.
fn forward_lines(out: std::process::ChildStdout) {
    use std::io::{BufRead, Write};
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { return };
        if line.starts_with("awaiting connections (at ") || line.contains("\terror connecting to worker") {
            eprintln!("{line}");
        } else if writeln!(std::io::stdout().lock(), "{line}").is_err() {
            return;
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn dispatch(cli: Cli) -> Result<()> {
    // Runs install logging once their config (which may name an OTLP endpoint) is known.
    let _logging = match &cli.command {
        Command::Run(_) | Command::Replay(_) => None,
        _ => Some(sensorflow::observe::logging::init(None)?),
    };
    match cli.command {
        Command::Run(args) => {
            let config = (*args).into_config()?;
            let _logging = sensorflow::observe::logging::init(config.otlp_endpoint.as_deref())?;
            let summary = sensorflow::run(&config)?;
            if config.summary {
                eprint!("{summary}");
            }
            Ok(())
        }
        Command::Train(args) => report(sensorflow_models::detector::pipeline::train(&args.options())?),
        Command::Distill(args) => report(sensorflow_models::detector::pipeline::distill(&args.options())?),
        Command::Prune(args) => report(sensorflow_models::detector::pipeline::prune(&args.options())?),
        Command::Quantize(args) => {
            report(sensorflow_models::detector::pipeline::quantize_step(&args.options())?)
        }
        Command::Optimize(args) => {
            let opts = args.options();
            let started = std::time::Instant::now();
            let rows = sensorflow_models::detector::pipeline::optimize(&opts)?;
            eprintln!(
                "optimize finished in {:.1} s; report in {}/report.md",
                started.elapsed().as_secs_f64(),
                opts.dir.display()
            );
            report(rows)
        }
        Command::Evaluate(args) => evaluate(args),
        Command::Simulate(args) => {
            let sim = args.sim_config();
            let (output, labels) = match args.to {
                cli::SimTarget::File => {
                    let out = args.out.clone().context("simulate --to file needs --out FILE")?;
                    let labels = args.labels.clone().unwrap_or_else(|| labels_path_for(&out));
                    (Output::File { format: Format::from_path(&out), path: out }, labels)
                }
                cli::SimTarget::Mqtt => {
                    let broker = args.net.broker.clone().context("simulate --to mqtt needs --broker")?;
                    let template =
                        args.net.topic_template.clone().unwrap_or_else(|| "sensors/{device}/{metric}".into());
                    (Output::Mqtt { broker, template }, args.labels.clone().unwrap_or("labels.json".into()))
                }
                cli::SimTarget::Kafka => {
                    let brokers = args.net.broker.clone().context("simulate --to kafka needs --broker")?;
                    let topic = args.net.topic.clone().unwrap_or_else(|| "sensors".into());
                    let out = Output::Kafka { brokers, topic, partitions: args.partitions };
                    (out, args.labels.clone().unwrap_or("labels.json".into()))
                }
            };
            let started = std::time::Instant::now();
            let written = simulate_to(&sim, &output, &labels, args.events, args.rate)?;
            let secs = started.elapsed().as_secs_f64();
            let target = match &output {
                Output::File { path, .. } => format!("to {}", path.display()),
                Output::Mqtt { broker, .. } => format!("to mqtt://{broker}"),
                Output::Kafka { brokers, topic, .. } => format!("to kafka://{brokers}/{topic}"),
            };
            eprintln!(
                "wrote {} events {target} in {secs:.1} s ({:.0}/s) and {} labelled anomalies to {}",
                written.events,
                written.events as f64 / secs.max(1e-9),
                written.labels.len(),
                written.labels_path.display()
            );
            Ok(())
        }
        Command::Cluster(args) => cluster(args),
        Command::Bench(args) => bench(args),
        Command::Record(args) => {
            let args = *args;
            let out = args.out.clone();
            let config = args.run.into_config()?;
            let started = std::time::Instant::now();
            let r = sensorflow::tools::record::record(&config.source, &out, config.max_events)?;
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "recorded {} events ({} chunks, {:.1} MB, {} bad records skipped) to {} in {secs:.1} s",
                r.events,
                r.chunks,
                r.bytes as f64 / 1e6,
                r.dead_lettered,
                out.display()
            );
            Ok(())
        }
        Command::Replay(args) => {
            let mut args = *args;
            args.run.source = Some(cli::SourceKind::Log);
            args.run.input = vec![args.file.clone()];
            args.run.realtime = args.speed;
            let config = args.run.into_config()?;
            let _logging = sensorflow::observe::logging::init(config.otlp_endpoint.as_deref())?;
            let summary = sensorflow::run(&config)?;
            if config.summary {
                eprint!("{summary}");
            }
            Ok(())
        }
        Command::Bridge(args) => {
            let mut cfg = BridgeConfig::new(&args.mqtt, &args.filter, &args.kafka, &args.topic);
            cfg.template = args.topic_template;
            cfg.partitions = args.partitions;
            cfg.client_id = args.client_id;
            cfg.batch = args.batch.max(1);
            cfg.dead_letters = args.dead_letters;
            cfg.until_idle = args.until_idle.map(std::time::Duration::from_millis);
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stats = run_bridge(&cfg, stop)?;
            eprintln!("bridge: {stats}");
            Ok(())
        }
    }
}

/// `evaluate --synthetic S --per-file`: detection per injected anomaly kind.
fn print_by_kind(kinds: &[sensorflow_models::detector::evaluate::KindDetection], threshold: f64) {
    println!("\nper anomaly kind (standard profile, threshold {threshold:.4}):");
    println!(
        "{:<14} {:>9} {:>8} {:>14} {:>14}",
        "kind", "anomalies", "detected", "median delay", "90th pct delay"
    );
    for k in kinds {
        let pct = |q: f64| {
            k.delays
                .get(((k.delays.len() as f64 - 1.0) * q).round() as usize)
                .map_or("–".to_string(), |d| format!("{d} rows"))
        };
        println!(
            "{:<14} {:>9} {:>8} {:>14} {:>14}",
            k.kind.map_or("–", |k| k.name()),
            k.anomalies,
            k.detected,
            pct(0.5),
            pct(0.9)
        );
    }
}
