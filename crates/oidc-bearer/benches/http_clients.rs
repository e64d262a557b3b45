//! Resident memory of N verifiers that each tried one key fetch (refused on 127.0.0.1:9): built
//! standalone, each with its own HTTP client, or by an issuer registry, which lends them one.
//! Each case runs in a child process of its own, so that one cannot reuse the other's freed pages.
//!
//! `cargo bench -p oidc-bearer --bench http_clients` (Linux: reads `/proc/self/statm`).
use oidc_bearer::VerifyToken as _;
use oidc_bearer::claims::DefaultClaims;

fn rss_kib() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: i64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn token(iss: &str) -> String {
    format!(
        "{}.{}.c2ln",
        b64(r#"{"alg":"RS256","kid":"k"}"#),
        b64(&format!(
            r#"{{"iss":"{iss}","aud":"aud","exp":9999999999}}"#
        ))
    )
}

fn main() {
    let Some(mode) = std::env::args()
        .nth(1)
        .filter(|m| m == "standalone" || m == "registry")
    else {
        // cargo bench passes `--bench`: run each case as a child process.
        let exe = std::env::current_exe().unwrap();
        for mode in ["standalone", "registry"] {
            let status = std::process::Command::new(&exe)
                .args([mode, "500"])
                .status()
                .unwrap();
            assert!(status.success(), "{mode}");
        }
        return;
    };
    let n: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let issuers: Vec<String> = (0..n)
        .map(|i| format!("http://127.0.0.1:9/iss{i}"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let warm = oidc_bearer::Verifier::builder("http://127.0.0.1:9/warm", "aud")
            .build()
            .unwrap();
        let _ = warm
            .verify_token::<DefaultClaims>(&token("http://127.0.0.1:9/warm"))
            .await;
        let before = rss_kib();
        let mut keep = Vec::new();
        let registry;
        if mode == "standalone" {
            for iss in &issuers {
                let v = oidc_bearer::Verifier::builder(iss.clone(), "aud")
                    .build()
                    .unwrap();
                let e = v
                    .verify_token::<DefaultClaims>(&token(iss))
                    .await
                    .unwrap_err();
                assert_eq!(e.code(), "keys_unavailable");
                keep.push(v);
            }
        } else {
            let mut b = oidc_bearer_registry::IssuerRegistry::builder();
            for iss in &issuers {
                b = b.with_issuer(oidc_bearer::Verifier::builder(iss.clone(), "aud"));
            }
            registry = b.build().unwrap();
            for iss in &issuers {
                let e = registry
                    .verify_token::<DefaultClaims>(&token(iss))
                    .await
                    .unwrap_err();
                assert_eq!(e.code(), "keys_unavailable");
            }
            assert_eq!(registry.built_issuers(), n);
        }
        let after = rss_kib();
        println!(
            "{mode}: {n} verifiers, RSS +{} KiB, {:.1} KiB each",
            after - before,
            (after - before) as f64 / n as f64
        );
    });
}
