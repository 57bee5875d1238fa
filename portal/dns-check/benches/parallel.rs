//! Full check of one relay against local hickory-server instances that delay every
//! answer, with all independent queries in parallel versus the same queries one after
//! another. Prints both times, the slowest single query, and the ratios.
//!
//! Run: `cargo bench -p chatmail-dns-check --bench parallel`
//!
//! Two set-ups: (a) only the zone's authoritative servers are slow (the usual case: the
//! resolver next to the portal is close, the provider's servers are far away), and (b)
//! every server is slow, including the resolver and the registry. In (b) a check cannot
//! beat its dependent steps (find the servers, then ask them), so its floor is two delays.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chatmail_dns_check::collect::{collect, Targets};
use chatmail_dns_check::observations::{Observations, Outcome};
use chatmail_dns_check::{check, CheckerConfig, QueryMode};
use support::*;

const DELAY: Duration = Duration::from_millis(20);
const RUNS: usize = 7;

fn answers(obs: &Observations) -> Vec<u64> {
    let mut v = Vec::new();
    let mut push = |o: &Outcome| {
        if let Some(a) = o.answer() {
            v.push(a.elapsed_ms);
        }
    };
    for l in obs.lookups.values() {
        l.auth.iter().for_each(|s| push(&s.outcome));
        l.recursive.iter().for_each(|r| push(&r.outcome));
    }
    for p in &obs.probes {
        p.auth.iter().for_each(|s| push(&s.outcome));
    }
    for p in &obs.ptr {
        push(&p.ptr);
        p.forward.iter().for_each(|(_, o)| push(o));
    }
    v
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn scenario(label: &str, slow_resolver: bool) {
    let plan = plan("example.org");
    let zone = correct_zone(&plan);
    let registry = registry_zone(&[("ns1.example.org", NS1_IP), ("ns2.example.org", NS2_IP)]);
    let mut resolver_zones = vec![registry.clone(), zone.clone()];
    resolver_zones.extend(reverse_zones(&["example.org"], &["example.org"]));
    let slow = Behaviour::Delay(DELAY);
    let other = if slow_resolver {
        slow
    } else {
        Behaviour::Normal
    };
    let world = World::start(vec![
        ServerSpec::new(RESOLVER_IP, resolver_zones).with(other),
        ServerSpec::new(REGISTRY_IP, vec![registry]).with(other),
        ServerSpec::new(NS1_IP, vec![zone.clone()]).with(slow),
        ServerSpec::new(NS2_IP, vec![zone]).with(slow),
    ])
    .await;
    let mut config: CheckerConfig = world.config(Duration::from_secs(5));

    // Slowest single query, measured one at a time (sequential run, so no query waits
    // for the CPU behind others).
    config.mode = QueryMode::Sequential;
    let obs = collect(&Targets::from_plan(&plan), &config).await;
    let per_query = answers(&obs);
    let slowest = Duration::from_millis(per_query.iter().copied().max().unwrap_or(0));
    let queries = per_query.len();

    let mut seq = Vec::new();
    let mut par = Vec::new();
    for _ in 0..RUNS {
        config.mode = QueryMode::Sequential;
        let t = Instant::now();
        let r = check(&plan, &config).await;
        seq.push(t.elapsed());
        assert!(r.is_all_green(), "{:?}", r.findings);
        config.mode = QueryMode::Parallel;
        let t = Instant::now();
        let r = check(&plan, &config).await;
        par.push(t.elapsed());
        assert!(r.is_all_green(), "{:?}", r.findings);
    }
    let (seq, par) = (median(seq), median(par));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{label}");
    println!("  queries answered in one check:        {queries}");
    println!(
        "  slowest single query:                 {:8.1} ms",
        ms(slowest)
    );
    println!("  full check, one after another:        {:8.1} ms", ms(seq));
    println!("  full check, in parallel:              {:8.1} ms", ms(par));
    println!(
        "  sequential / parallel:                {:8.1}x",
        ms(seq) / ms(par)
    );
    println!(
        "  parallel / slowest single query:      {:8.2}x",
        ms(par) / ms(slowest)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful either.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        println!(
            "chatmail-dns-check: full check of one relay, {} ms artificial delay per answer, median of {RUNS} runs\n",
            DELAY.as_millis()
        );
        scenario("(a) authoritative servers slow, resolver and registry fast", false).await;
        println!();
        scenario("(b) every server slow (resolver and registry too)", true).await;
    });
}
