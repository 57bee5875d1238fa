//! Full check of one relay against local hickory-server instances that delay every
//! answer, with all independent queries in parallel versus the same queries one after
//! another. Prints both times, the slowest single query, and the ratios.
//!
//! Run: `cargo bench -p chatmail-dns-check --bench parallel`
//!
//! Two set-ups: (a) only the zone's authoritative servers are slow (the usual case: the
//! resolver next to the portal is close, the provider's servers are far away), and (b)
//! every server is slow, including the resolver and the registry. In (b) a first check
//! cannot beat its dependent steps (find the zone's NS names, look up their addresses,
//! then ask the servers), so its floor is three delays. A repeated check by the same
//! long-lived `Checker` (the portal's status page refreshes every 30 s) starts from the
//! servers it kept, so its floor is one delay.
//!
//! Each set-up prints the first check (a new `Checker`: cold cache, what the free
//! `check` function does) and repeated checks (warm cache), against the two
//! goals: the parallel/sequential comparison, and "a full check takes at most 1.5× the
//! slowest single query".

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chatmail_dns_check::collect::{collect, Targets};
use chatmail_dns_check::observations::{Observations, Outcome};
use chatmail_dns_check::{check, Checker, CheckerConfig, QueryMode};
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
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut par = config.clone();
    par.mode = QueryMode::Parallel;
    let kept = Checker::new(par.clone());
    let r = kept.check(&plan).await;
    assert!(r.is_all_green(), "{:?}", r.findings);
    for _ in 0..RUNS {
        config.mode = QueryMode::Sequential;
        let t = Instant::now();
        let r = check(&plan, &config).await;
        seq.push(t.elapsed());
        assert!(r.is_all_green(), "{:?}", r.findings);

        let first = Checker::new(par.clone());
        let t = Instant::now();
        let r = first.check(&plan).await;
        cold.push(t.elapsed());
        assert!(r.is_all_green(), "{:?}", r.findings);
        assert_eq!(first.cache_stats().misses, 1);

        let t = Instant::now();
        let r = kept.check(&plan).await;
        warm.push(t.elapsed());
        assert!(r.is_all_green(), "{:?}", r.findings);
    }
    let stats = kept.cache_stats();
    assert_eq!(
        (stats.hits, stats.rediscovered),
        (RUNS as u64, 0),
        "every repeated check started from the kept servers: {stats:?}"
    );
    let (seq, cold, warm) = (median(seq), median(cold), median(warm));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let verdict = |ratio: f64| if ratio <= 1.5 { "meets" } else { "misses" };
    println!("{label}");
    println!("  questions answered in one check:              {queries}");
    println!(
        "  slowest single query:                         {:8.1} ms",
        ms(slowest)
    );
    println!(
        "  full check, one after another (baseline):     {:8.1} ms",
        ms(seq)
    );
    println!(
        "  full check, parallel, first check (cold):     {:8.1} ms",
        ms(cold)
    );
    println!(
        "  full check, parallel, repeated check (warm):  {:8.1} ms",
        ms(warm)
    );
    println!("  goal \"parallel vs one after another\" (sequential / parallel):");
    println!(
        "    first check (cold)                          {:8.1}x",
        ms(seq) / ms(cold)
    );
    println!(
        "    repeated check (warm)                       {:8.1}x",
        ms(seq) / ms(warm)
    );
    println!("  goal \"full check at most 1.5x the slowest single query\" (parallel / slowest):");
    let r = ms(cold) / ms(slowest);
    println!(
        "    first check (cold)                          {r:8.2}x  {}",
        verdict(r)
    );
    let r = ms(warm) / ms(slowest);
    println!(
        "    repeated check (warm)                       {r:8.2}x  {}",
        verdict(r)
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
            "chatmail-dns-check: full check of one relay, {} ms artificial delay per answer, median of {RUNS} runs\n\
             (cold: a new Checker, as the free check() function; warm: a Checker that checked this relay before)\n",
            DELAY.as_millis()
        );
        scenario("(a) authoritative servers slow, resolver and registry fast", false).await;
        println!();
        scenario("(b) every server slow (resolver and registry too)", true).await;
    });
}
