//! `summary.md`: the verdict, the setup, one table row per rate, baselines, errors and the
//! search steps.

use std::fmt::Write as _;

use super::model::{
    Baseline, BenchReport, LatencySummary, PhaseResult, RateResult, Ratios, SearchReport,
};

/// A latency in ms with a precision that suits its size.
pub fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

fn signed_ms(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| {
        if v >= 0.0 {
            format!("+{}", ms(v))
        } else {
            format!("-{}", ms(-v))
        }
    })
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("×{v:.1}"))
}

/// A rate without needless decimals.
pub fn rate(v: f64) -> String {
    crate::text::plain_number(v)
}

fn pair(s: Option<LatencySummary>) -> String {
    s.map_or("-".to_owned(), |s| {
        format!("{} / {}", ms(s.p50_ms), ms(s.p99_ms))
    })
}

/// The cells of one rate in the main table (shared with the HTML report).
pub fn row_cells(r: &RateResult) -> Vec<String> {
    let s = &r.sidecar;
    let lat = |l: Option<LatencySummary>| -> Vec<String> {
        match l {
            Some(l) => [l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms]
                .into_iter()
                .map(ms)
                .collect(),
            None => vec!["-".to_owned(); 5],
        }
    };
    let mut cells = vec![rate(r.rate), format!("{:.1}", s.achieved_rate)];
    cells.extend(lat(s.publish));
    cells.extend(lat(s.e2e));
    cells.push(pair(r.noop.as_ref().and_then(|n| n.publish)));
    cells.push(pair(r.direct.result().and_then(|d| d.e2e)));
    let o = &r.overhead;
    for (p50_ms, p99_ms, p50_ratio, p99_ratio) in [
        (
            o.publish_p50_ms,
            o.publish_p99_ms,
            o.publish_p50_ratio,
            o.publish_p99_ratio,
        ),
        (o.e2e_p50_ms, o.e2e_p99_ms, o.e2e_p50_ratio, o.e2e_p99_ratio),
    ] {
        cells.push(format!(
            "{} / {} ({} / {})",
            signed_ms(p50_ms),
            signed_ms(p99_ms),
            ratio(p50_ratio),
            ratio(p99_ratio)
        ));
    }
    cells.push(
        s.resources
            .map_or("-".to_owned(), |x| format!("{:.0}", x.mcpu_mean)),
    );
    cells.push(
        s.resources
            .map_or("-".to_owned(), |x| format!("{:.1}", x.rss_mb_max)),
    );
    cells
}

/// The headers of the main table.
pub const HEADERS: &[&str] = &[
    "rate (msg/s)",
    "achieved (msg/s)",
    "publish p50",
    "publish p90",
    "publish p99",
    "publish p99.9",
    "publish max",
    "e2e p50",
    "e2e p90",
    "e2e p99",
    "e2e p99.9",
    "e2e max",
    "no-op publish p50 / p99",
    "broker e2e p50 / p99",
    "publish overhead p50 / p99",
    "e2e overhead p50 / p99",
    "sidecar mCPU",
    "sidecar RSS (MB)",
];

fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        headers.iter().map(|_| "---|").collect::<String>()
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
}

fn phase_line(name: &str, p: &PhaseResult) -> Vec<String> {
    let errors = if p.errors.is_empty() {
        "0".to_owned()
    } else {
        p.errors
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        name.to_owned(),
        rate(p.rate),
        p.sent.to_string(),
        format!("{:.1}", p.achieved_rate),
        errors,
        p.lost.map_or("-".to_owned(), |l| l.to_string()),
        p.duplicates.map_or("-".to_owned(), |l| l.to_string()),
        pair(p.publish),
        pair(p.e2e),
        p.send_delay.map_or("-".to_owned(), |d| ms(d.p99_ms)),
    ]
}

/// The headers of the side-by-side table of several targets.
pub const TARGET_HEADERS: &[&str] = &[
    "rate (msg/s)",
    "target",
    "achieved (msg/s)",
    "publish p50",
    "publish p90",
    "publish p99",
    "publish p99.9",
    "e2e p50",
    "e2e p90",
    "e2e p99",
    "e2e p99.9",
    "mCPU",
    "CPU per msg (µs)",
    "RSS (MB)",
];

/// CPU time per accepted message, in microseconds (mean mCPU over the achieved rate).
fn cpu_us_per_msg(p: &PhaseResult) -> Option<f64> {
    p.resources
        .filter(|_| p.achieved_rate > 0.0)
        .map(|x| x.mcpu_mean / p.achieved_rate * 1000.0)
}

fn target_row(rate_cell: String, name: &str, p: &PhaseResult) -> Vec<String> {
    let lat = |l: Option<LatencySummary>| -> Vec<String> {
        match l {
            Some(l) => [l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms]
                .into_iter()
                .map(ms)
                .collect(),
            None => vec!["-".to_owned(); 4],
        }
    };
    let mut row = vec![
        rate_cell,
        name.to_owned(),
        format!("{:.1}", p.achieved_rate),
    ];
    row.extend(lat(p.publish));
    row.extend(lat(p.e2e));
    row.push(
        p.resources
            .map_or("-".to_owned(), |x| format!("{:.0}", x.mcpu_mean)),
    );
    row.push(cpu_us_per_msg(p).map_or("-".to_owned(), |c| format!("{c:.1}")));
    row.push(
        p.resources
            .map_or("-".to_owned(), |x| format!("{:.1}", x.rss_mb_max)),
    );
    row
}

fn ratio_row(rate_cell: String, name: &str, first: &str, v: &Ratios) -> Vec<String> {
    let mut row = vec![rate_cell, format!("{name} ÷ {first}"), "-".to_owned()];
    row.extend(v.publish.iter().chain(&v.e2e).map(|x| ratio(*x)));
    row.push("-".to_owned());
    row.push(ratio(v.cpu_per_msg));
    row.push(ratio(v.rss));
    row
}

/// The rows of the side-by-side table (shared with the HTML report): per rate, every target,
/// then each other target's figures divided by the first's.
pub fn target_rows(r: &BenchReport) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for rr in r.rates.iter().filter(|rr| !rr.others.is_empty()) {
        rows.push(target_row(rate(rr.rate), &r.target, &rr.sidecar));
        for o in &rr.others {
            rows.push(target_row(rate(rr.rate), &o.target, &o.sidecar));
        }
        for o in &rr.others {
            rows.push(ratio_row(rate(rr.rate), &o.target, &r.target, &o.vs_first));
        }
    }
    rows
}

/// The steps of a maximum-rate search, one row each.
fn steps_table(out: &mut String, s: &SearchReport) {
    let rows: Vec<Vec<String>> = s
        .steps
        .iter()
        .enumerate()
        .map(|(i, st)| {
            vec![
                (i + 1).to_string(),
                rate(st.rate),
                if st.passed { "pass" } else { "fail" }.to_owned(),
                st.reason.clone(),
            ]
        })
        .collect();
    table(out, &["step", "rate", "verdict", "why"], &rows);
}

/// The whole summary.
pub fn render(r: &BenchReport) -> String {
    let mut out = String::new();
    let mut names = vec![format!("`{}`", r.target)];
    names.extend(r.other_targets.iter().map(|t| format!("`{t}`")));
    let _ = writeln!(
        out,
        "# pubsub-tck bench: {} on `{}` over {}\n",
        names.join(" vs "),
        r.broker,
        r.protocol
    );
    if r.failures.is_empty() {
        out.push_str("**PASS**: every publish answered, every accepted message delivered.\n\n");
    } else {
        out.push_str("**FAIL**\n\n");
        for f in &r.failures {
            let _ = writeln!(out, "- {f}");
        }
        out.push('\n');
    }
    let p = &r.params;
    let _ = writeln!(
        out,
        "Run `{}`, seed {}, started {}, {} s. Machine: {} cores{} ({}/{}).",
        r.run_id,
        r.seed,
        r.started_at,
        r.duration_ms / 1000,
        r.machine.cores,
        r.machine
            .cpu_model
            .as_ref()
            .map_or(String::new(), |m| format!(", {m}")),
        r.machine.os,
        r.machine.arch
    );
    let _ = writeln!(
        out,
        "Open loop: {} B payloads, {} publishers × {} connections on {} generator thread(s), {} s measured per phase in {} interleaved round(s) after {} s warm-up, drain window {} s.",
        p.payload_size,
        p.publishers,
        p.connections,
        p.threads.max(1),
        p.duration_ms as f64 / 1000.0,
        p.rounds.max(1),
        p.warmup_ms as f64 / 1000.0,
        p.drain_ms as f64 / 1000.0
    );
    out.push_str(
        "Latencies in ms from each message's intended send time (coordinated-omission safe); e2e ends when the subscribed app has read the delivery.\n\n",
    );

    let side_by_side = target_rows(r);
    if !side_by_side.is_empty() {
        let _ = writeln!(
            out,
            "## Targets side by side\n\nEvery target ran at once, each with its own app and topic on the same broker; their rounds and the baselines' took turns. A ratio row divides a target's figure by `{}`'s: below ×1.0 it did better.\n",
            r.target
        );
        table(&mut out, TARGET_HEADERS, &side_by_side);
        out.push('\n');
    }
    if !r.rates.is_empty() {
        out.push_str("## Results\n\n");
        if !r.other_targets.is_empty() {
            let _ = writeln!(
                out,
                "Overheads over the baselines, for `{}` and then for each other target.\n",
                r.target
            );
        }
        let mut rows: Vec<Vec<String>> = r.rates.iter().map(row_cells).collect();
        for (i, name) in r.other_targets.iter().enumerate() {
            for rr in &r.rates {
                if let Some(o) = rr.others.get(i) {
                    let as_first = RateResult {
                        sidecar: o.sidecar.clone(),
                        overhead: o.overhead.clone(),
                        others: Vec::new(),
                        ..rr.clone()
                    };
                    let mut cells = row_cells(&as_first);
                    cells[0] = format!("{} ({name})", cells[0]);
                    rows.push(cells);
                }
            }
        }
        table(&mut out, HEADERS, &rows);
        out.push_str("\n## Phases\n\n");
        let mut rows = Vec::new();
        let first_label = if r.other_targets.is_empty() {
            "sidecar"
        } else {
            r.target.as_str()
        };
        for rr in &r.rates {
            rows.push(phase_line(first_label, &rr.sidecar));
            for o in &rr.others {
                rows.push(phase_line(&o.target, &o.sidecar));
            }
            if let Some(n) = &rr.noop {
                rows.push(phase_line("no-op HTTP", n));
            }
            match &rr.direct {
                Baseline::Measured { method, result } => {
                    rows.push(phase_line(&format!("direct: {method}"), result));
                }
                Baseline::Unavailable { reason } => {
                    let mut row = vec!["direct broker".to_owned(), rate(rr.rate)];
                    row.push(format!("unavailable: {reason}"));
                    row.extend(std::iter::repeat_n("-".to_owned(), 7));
                    rows.push(row);
                }
                Baseline::Skipped => {}
            }
        }
        table(
            &mut out,
            &[
                "phase",
                "rate",
                "sent",
                "achieved",
                "errors",
                "lost",
                "duplicates",
                "publish p50 / p99",
                "e2e p50 / p99",
                "send delay p99",
            ],
            &rows,
        );
    }

    if let Some(s) = &r.search {
        let _ = writeln!(
            out,
            "\n## Maximum sustainable rate\n\nBound: publish and e2e p99 ≤ {} ms with ≥ 99% of the rate achieved, {} s per step.\n",
            s.p99_bound_ms,
            s.step_duration_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "**Result: {}**\n",
            s.max_rate.map_or("no rate passed".to_owned(), |m| format!(
                "{} msg/s",
                rate(m)
            ))
        );
        steps_table(&mut out, s);
    }

    for o in &r.other_searches {
        let first = r.search.as_ref().and_then(|s| s.max_rate);
        let _ = writeln!(
            out,
            "\n### Maximum sustainable rate of `{}`\n\n**Result: {}**{}\n",
            o.target,
            o.search
                .max_rate
                .map_or("no rate passed".to_owned(), |m| format!(
                    "{} msg/s",
                    rate(m)
                )),
            match (o.search.max_rate, first) {
                (Some(m), Some(f)) if f > 0.0 =>
                    format!(" ({} of `{}`'s)", ratio(Some(m / f)), r.target),
                _ => String::new(),
            }
        );
        steps_table(&mut out, &o.search);
    }

    if !r.notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    let rates: Vec<String> = r.params.rates.iter().map(|&x| rate(x)).collect();
    let _ = writeln!(
        out,
        "\nReplay: `pubsub-tck bench --broker {} --protocol {} --rate {} --duration {}ms --rounds {} --warmup {}ms --payload-size {} --publishers {} --connections {} --threads {} --seed {}`",
        r.broker,
        r.protocol,
        rates.join(","),
        p.duration_ms,
        p.rounds.max(1),
        p.warmup_ms,
        p.payload_size,
        p.publishers,
        p.connections,
        p.threads.max(1),
        r.seed
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::model::{SearchReport, SearchStep};
    use crate::bench::test_support::{phase, sample_report};

    #[test]
    fn formats_numbers() {
        assert_eq!(ms(0.12345), "0.123");
        assert_eq!(ms(12.345), "12.35");
        assert_eq!(ms(1234.5), "1234");
        assert_eq!(rate(1000.0), "1000");
        assert_eq!(rate(312.5), "312.5");
        assert_eq!(signed_ms(Some(-0.5)), "-0.500");
    }

    #[test]
    fn renders_the_table() {
        let md = render(&sample_report());
        assert!(md.starts_with("# pubsub-tck bench: `reference` on `in-memory` over http\n"));
        assert!(md.contains("**PASS**"));
        let header = md
            .lines()
            .find(|l| l.starts_with("| rate (msg/s)"))
            .unwrap();
        assert_eq!(header.matches('|').count(), HEADERS.len() + 1);
        let row = md.lines().find(|l| l.starts_with("| 1000 |")).unwrap();
        assert_eq!(
            row,
            "| 1000 | 999.5 | 1.00 | 1.80 | 3.00 | 6.00 | 10.00 | 2.00 | 3.60 | 6.00 | 12.00 | 20.00 | 0.250 / 0.750 | 0.250 / 0.750 | +0.750 / +2.25 (×4.0 / ×4.0) | +1.75 / +5.25 (×8.0 / ×8.0) | 120 | 13.5 |"
        );
        assert!(md.contains("| direct: tokio channel | 1000 | 2000 |"));
        assert!(md.contains("- a note"));
        assert!(md.contains("--seed 7`"));
    }

    #[test]
    fn several_targets_are_side_by_side_with_their_ratios() {
        let md = render(&crate::bench::test_support::two_target_report());
        assert!(
            md.starts_with("# pubsub-tck bench: `reference` vs `daprd` on `in-memory` over http\n"),
            "{md}"
        );
        let rows: Vec<&str> = md
            .lines()
            .skip_while(|l| !l.starts_with("## Targets side by side"))
            .take_while(|l| !l.starts_with("## Results"))
            .filter(|l| l.starts_with("| 1000 |"))
            .collect();
        assert_eq!(rows.len(), 3, "{md}");
        assert!(
            rows[0].starts_with("| 1000 | reference | 999.5 | 1.00 | 1.80 |"),
            "{}",
            rows[0]
        );
        assert!(
            rows[1].starts_with("| 1000 | daprd | 999.5 | 3.00 | 5.40 |"),
            "{}",
            rows[1]
        );
        // Three times the latency, twice the CPU per message, the same memory.
        assert_eq!(
            rows[2],
            "| 1000 | daprd ÷ reference | - | ×3.0 | ×3.0 | ×3.0 | ×3.0 | ×3.0 | ×3.0 | ×3.0 | ×3.0 | - | ×2.0 | ×1.0 |"
        );
        assert!(md.contains("| 1000 (daprd) |"), "{md}");
        assert!(md.contains("| daprd | 1000 | 2000 |"), "{md}");
    }

    #[test]
    fn renders_failures_and_the_search() {
        let mut r = sample_report();
        r.failures.push("1000 msg/s: 3 messages lost".into());
        r.search = Some(SearchReport {
            p99_bound_ms: 10.0,
            step_duration_ms: 5000,
            steps: vec![SearchStep {
                rate: 1000.0,
                passed: true,
                reason: "publish p99 1 ms".into(),
                result: phase(1.0, true),
            }],
            max_rate: Some(1000.0),
        });
        r.rates[0].direct = Baseline::Unavailable {
            reason: "built without the kafka feature".into(),
        };
        let md = render(&r);
        assert!(md.contains("**FAIL**\n\n- 1000 msg/s: 3 messages lost\n"));
        assert!(md.contains("**Result: 1000 msg/s**"));
        assert!(md.contains("| 1 | 1000 | pass | publish p99 1 ms |"));
        assert!(md.contains("unavailable: built without the kafka feature"));
    }
}
