//! Verifications per second on one core, against raw Ed25519 verification of the same token's
//! signature on the same machine, measured in alternating rounds so the machine's noise falls on
//! both alike. Run by `bench/guard` (release build):
//!
//! `cargo run --release -p portico-guard --example verify_bench -- [rounds] [seconds per round]`

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portico_guard::testing::TestIssuer;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let seconds: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let issuer = TestIssuer::new("https://id.example.test");
    let guard = rt.block_on(issuer.guard("https://crm.example.test"));
    let mut c = issuer.claims("usr_0123456789abcdef", "https://crm.example.test");
    c.org_id = Some("ten_0123456789abcdef".into());
    c.roles = vec!["editor".into()];
    c.permissions = vec!["read:contacts".into(), "write:contacts".into()];
    c.scope = "openid profile".into();
    let token = issuer.sign(&c);
    let (signed, signature) = token.rsplit_once('.').expect("a JWS");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64");
    let x = issuer.key.jwk()["x"].as_str().expect("x").to_owned();
    let public = UnparsedPublicKey::new(&ED25519, URL_SAFE_NO_PAD.decode(x).expect("base64"));
    assert!(rt.block_on(guard.verify(&token)).is_ok());

    let run = |f: &mut dyn FnMut()| {
        let limit = Duration::from_secs_f64(seconds);
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < limit {
            for _ in 0..256 {
                f();
            }
            n += 256;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let (mut guard_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        guard_rates.push(run(&mut || {
            rt.block_on(guard.verify(&token)).expect("verifies");
        }));
        raw_rates.push(run(&mut || {
            public.verify(signed.as_bytes(), &signature).expect("verifies");
        }));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (g, r) = (median(&mut guard_rates), median(&mut raw_rates));
    println!("token: {} bytes; {rounds} rounds of {seconds} s each, one thread (one core)", token.len());
    println!("portico-guard verify: {g:>10.0} /s  (rounds: {guard_rates:.0?})");
    println!("raw Ed25519 verify:   {r:>10.0} /s  (rounds: {raw_rates:.0?})");
    println!("ratio: {:.1} % of raw", 100.0 * g / r);
}
