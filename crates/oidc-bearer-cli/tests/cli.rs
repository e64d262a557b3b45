//! The `oidc-bearer` binary, run as a process against a `TestIssuer` on 127.0.0.1.

use std::io::Write;
use std::process::{Command, Stdio};

use oidc_bearer_testing::{KeyAlg, TestIssuer, now};
use serde_json::{Value, json};

/// Runs the binary with `args`, `stdin` piped in; (exit status, stdout, stderr).
fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oidc-bearer"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().expect("exited"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// [`run`] with `--json`, parsing standard output.
fn run_json(args: &[&str], stdin: &str) -> (i32, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = run(&all, stdin);
    let value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
    (code, value)
}

fn issuer() -> TestIssuer {
    TestIssuer::builder().start_blocking()
}

/// The status of each rule of a `verify --json` report, by rule id.
fn statuses(report: &Value) -> Vec<(String, String)> {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn rule<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == id)
        .unwrap_or_else(|| panic!("no rule {id} in {report}"))
}

#[test]
fn inspect_reads_standard_input_and_recognises_a_kubernetes_bound_token() {
    let issuer = issuer();
    let token = issuer
        .token()
        .kubernetes("prod", "billing")
        .aud("api")
        .sign();
    let (code, out, err) = run(&["inspect"], &format!("{token}\n"));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NOT VERIFIED"), "{out}");
    assert!(
        out.contains("Kubernetes bound service-account token (TokenRequest / projected volume) for prod/billing, bound to pod billing-"),
        "{out}"
    );
    // exp = iat + 3607 s.
    assert!(out.contains("(expires in 60 min)"), "{out}");
    assert!(
        out.contains("sub: \"system:serviceaccount:prod:billing\""),
        "{out}"
    );
    // Never contacted anything.
    assert_eq!(issuer.discovery_fetches() + issuer.jwks_fetches(), 0);
}

#[test]
fn inspect_reads_a_file_and_names_each_kind_of_token() {
    let issuer = issuer();
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        (
            issuer.token().kubernetes("prod", "billing").sign(),
            "kubernetes_bound",
        ),
        (
            issuer
                .token()
                .iss("kubernetes/serviceaccount")
                .claim("kubernetes.io/serviceaccount/namespace", json!("default"))
                .claim(
                    "kubernetes.io/serviceaccount/service-account.name",
                    json!("old"),
                )
                .no_exp()
                .sign(),
            "kubernetes_legacy",
        ),
        (
            issuer
                .token()
                .iss("https://accounts.google.com")
                .claim("email", json!("a@example.com"))
                .sign(),
            "google_id_token",
        ),
        (
            issuer
                .token()
                .iss("deployer@p.iam.gserviceaccount.com")
                .sign(),
            "google_sign_jwt",
        ),
        (
            issuer.token().header("typ", json!("at+jwt")).sign(),
            "access_token",
        ),
        (issuer.token().sign(), "jwt"),
    ];
    for (i, (token, kind)) in rows.iter().enumerate() {
        let path = dir.path().join(format!("token-{i}"));
        std::fs::write(&path, token).unwrap();
        let (code, report) = run_json(&["inspect", path.to_str().unwrap()], "");
        assert_eq!(code, 0);
        assert_eq!(report["kind"], *kind, "{report}");
        assert_eq!(report["verified"], false);
    }
    let legacy = std::fs::read_to_string(dir.path().join("token-1")).unwrap();
    let (_, out, _) = run(&["inspect"], &legacy);
    assert!(out.contains("(no exp: this token never expires)"), "{out}");
}

#[test]
fn inspect_says_a_token_is_dpop_bound() {
    let issuer = issuer();
    let key = oidc_bearer_testing::DpopKey::generate(KeyAlg::ES256);
    let bound = issuer.token().aud("api").dpop_bound(&key).sign();
    let (code, out, err) = run(&["inspect"], &bound);
    assert_eq!(code, 0, "{err}");
    let line = format!(
        "DPoP-bound (RFC 9449): only valid as `Authorization: DPoP` with a proof signed by the key of thumbprint {}",
        key.thumbprint()
    );
    assert!(out.contains(&line), "{out}");
    let (_, report) = run_json(&["inspect"], &bound);
    assert_eq!(report["dpop_jkt"], key.thumbprint());
    let (_, report) = run_json(&["inspect"], &issuer.token().aud("api").sign());
    assert_eq!(report["dpop_jkt"], Value::Null);
}

#[test]
fn inspect_shows_how_long_ago_a_token_expired() {
    let issuer = issuer();
    let token = issuer.token().exp(now() - 3 * 3600 - 30).sign();
    let (code, report) = run_json(&["inspect"], &token);
    assert_eq!(code, 0);
    assert_eq!(report["times"]["exp"]["relative"], "expired 3 h ago");
    assert!(
        report["times"]["exp"]["date"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[test]
fn bad_input_is_a_clear_usage_error() {
    let rows = [
        ("not-a-token", "three dot-separated segments"),
        ("", "no token in standard input"),
        ("a.b.c", "the header is not"),
        ("Bearer e30.e30", "three dot-separated segments"),
    ];
    for (input, message) in rows {
        let (code, out, err) = run(&["inspect"], input);
        assert_eq!(code, 2, "{input:?}: {out}");
        assert!(err.contains(message), "{input:?}: {err}");
    }
    let (code, _, err) = run(&["inspect", "/nonexistent/token"], "");
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/token"), "{err}");
}

#[test]
fn verify_accepts_a_good_token_and_every_rule_passes() {
    let issuer = issuer();
    let token = issuer.token().aud("api").sub("alice").sign();
    let (code, report) = run_json(
        &["verify", "--issuer", &issuer.issuer(), "--audience", "api"],
        &token,
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["accepted"], true);
    assert_eq!(report["claims"]["sub"], "alice");
    for (rule, status) in statuses(&report) {
        let expected = if rule == "typ" || rule == "required" {
            "skipped"
        } else {
            "pass"
        };
        assert_eq!(status, expected, "{rule}: {report}");
    }
    assert_eq!(rule(&report, "iss")["detail"], issuer.issuer());

    let (code, out, _) = run(
        &["verify", "--issuer", &issuer.issuer(), "--audience", "api"],
        &token,
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("ACCEPTED"), "{out}");
    assert!(out.contains("pass  signature"), "{out}");
}

#[test]
fn verify_names_the_failing_rule_with_its_reason_and_stops_there() {
    let issuer = issuer();
    let unpublished = issuer.add_unpublished_key(KeyAlg::RS256);
    let good = issuer.token().aud("api").sign();
    let (head, sig) = good.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    let bad_signature = format!("{head}.{flipped}{}", &sig[1..]);
    let rows = [
        (
            issuer.token().aud("other").sign(),
            "aud",
            r#"expected audience "api", got "other""#,
        ),
        (
            issuer.token().aud("api").exp(now() - 3 * 3600 - 30).sign(),
            "exp",
            "expired 3 h ago",
        ),
        (bad_signature, "signature", "invalid signature"),
        (
            issuer.token().aud("api").sign_with(&unpublished).sign(),
            "key",
            "kid not in the issuer's key set",
        ),
        (
            issuer.token().aud("api").iss("https://evil.example").sign(),
            "iss",
            "expected issuer",
        ),
    ];
    let order: Vec<&str> = vec![
        "size",
        "structure",
        "alg",
        "typ",
        "key",
        "signature",
        "iss",
        "aud",
        "exp",
        "nbf",
        "iat",
        "required",
    ];
    for (token, failing, reason) in rows {
        let (code, report) = run_json(
            &["verify", "--issuer", &issuer.issuer(), "--audience", "api"],
            &token,
        );
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["accepted"], false);
        let failed = rule(&report, failing);
        assert_eq!(failed["status"], "fail", "{report}");
        assert!(
            failed["detail"].as_str().unwrap().contains(reason),
            "{failing}: {failed}"
        );
        assert!(failed["rfc"].as_str().unwrap().starts_with("RFC"));
        let at = order.iter().position(|r| *r == failing).unwrap();
        for (i, (rule, status)) in statuses(&report).into_iter().enumerate() {
            let expected = match rule.as_str() {
                "typ" | "required" => "skipped",
                _ if i < at => "pass",
                _ if i == at => "fail",
                _ => "not_checked",
            };
            assert_eq!(status, expected, "{failing}/{rule}: {report}");
        }
    }
}

#[test]
fn verify_reports_a_discovery_document_naming_another_issuer() {
    let issuer = issuer();
    issuer.set_discovery_issuer("https://impostor.example");
    let token = issuer.token().aud("api").sign();
    let (code, report) = run_json(
        &["verify", "--issuer", &issuer.issuer(), "--audience", "api"],
        &token,
    );
    assert_eq!(code, 1);
    assert_eq!(report["code"], "keys_unavailable");
    let key = rule(&report, "key");
    assert_eq!(key["status"], "fail");
    assert!(
        key["detail"]
            .as_str()
            .unwrap()
            .contains(r#"discovery document names issuer "https://impostor.example""#),
        "{key}"
    );
}

#[test]
fn verify_uses_static_keys_from_a_jwks_or_pem_file_without_fetching() {
    let issuer = issuer();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, issuer.jwks_json().to_string()).unwrap();
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, issuer.public_key_pem(&issuer.signing_kid())).unwrap();
    let token = issuer.token().aud("api").sign();
    let iss = issuer.issuer();
    let base = ["verify", "--issuer", &iss, "--audience", "api"];
    let kid = issuer.signing_kid();
    for extra in [
        vec!["--jwks", jwks.to_str().unwrap()],
        vec!["--pem", pem.to_str().unwrap(), "--kid", &kid],
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let (code, report) = run_json(&args, &token);
        assert_eq!(code, 0, "{report}");
    }
    // A PEM key without the token's kid does not match it.
    let (code, report) = run_json(
        &[&base[..], &["--pem", pem.to_str().unwrap()]].concat(),
        &token,
    );
    assert_eq!(code, 1);
    assert_eq!(rule(&report, "key")["status"], "fail");
    assert_eq!(issuer.discovery_fetches() + issuer.jwks_fetches(), 0);
}

#[test]
fn verify_requires_typ_and_applies_leeway_when_asked() {
    let issuer = issuer();
    let iss = issuer.issuer();
    let base = ["verify", "--issuer", &iss, "--audience", "api"];
    let plain = issuer.token().aud("api").sign();
    let access = issuer
        .token()
        .aud("api")
        .header("typ", json!("at+jwt"))
        .sign();
    let (code, report) = run_json(&[&base[..], &["--typ", "at+jwt"]].concat(), &plain);
    assert_eq!(code, 1);
    assert!(
        rule(&report, "typ")["detail"]
            .as_str()
            .unwrap()
            .contains(r#"expected typ "at+jwt", got "JWT""#),
        "{report}"
    );
    let (code, _) = run_json(&[&base[..], &["--typ", "at+jwt"]].concat(), &access);
    assert_eq!(code, 0);

    // Expired 30 s ago: within the default leeway of 60 s, not within 10 s.
    let recent = issuer.token().aud("api").exp(now() - 30).sign();
    let (code, report) = run_json(&base, &recent);
    assert_eq!(code, 0, "{report}");
    let (code, report) = run_json(&[&base[..], &["--leeway", "10"]].concat(), &recent);
    assert_eq!(code, 1);
    assert_eq!(rule(&report, "exp")["status"], "fail");
}

#[test]
fn verify_legacy_tokens_with_the_cluster_key() {
    let issuer = issuer();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("sa.pub");
    std::fs::write(&pem, issuer.public_key_pem(&issuer.signing_kid())).unwrap();
    let kid = issuer.signing_kid();
    let legacy = issuer
        .token()
        .iss("kubernetes/serviceaccount")
        .sub("system:serviceaccount:default:old")
        .claim("kubernetes.io/serviceaccount/namespace", json!("default"))
        .no_exp()
        .sign();
    let args = [
        "verify",
        "--legacy",
        "--pem",
        pem.to_str().unwrap(),
        "--kid",
        &kid,
    ];
    let (code, report) = run_json(&args, &legacy);
    assert_eq!(code, 0, "{report}");
    assert_eq!(rule(&report, "required")["status"], "pass");
    // A bound token is never accepted as a legacy one.
    let bound = issuer.token().kubernetes("default", "new").sign();
    let (code, _) = run_json(&args, &bound);
    assert_eq!(code, 1);
    // --legacy without a key is a usage error.
    let (code, _, err) = run(&["verify", "--legacy"], &legacy);
    assert_eq!(code, 2);
    assert!(err.contains("--pem or --jwks"), "{err}");
}

#[test]
fn discover_shows_keys_skipped_keys_and_what_the_cache_does() {
    let issuer = issuer();
    let ec = issuer.add_key(KeyAlg::ES256);
    issuer.add_raw_jwk(
        json!({"kty": "RSA", "kid": "encryption", "use": "enc", "n": "AQAB", "e": "AQAB"}),
    );
    issuer.add_raw_jwk(json!({"kty": "oct", "kid": "secret", "k": "c2VjcmV0"}));
    issuer.set_cache_control(Some("public, max-age=300"));
    let (code, report) = run_json(&["discover", &issuer.issuer()], "");
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["discovery"]["issuer_matches"], true);
    assert_eq!(report["jwks"]["cache_control"], "public, max-age=300");
    assert_eq!(report["cache"]["lifetime_secs"], 300);
    assert_eq!(report["jwks"]["usable"], 2);
    assert_eq!(report["jwks"]["skipped"], 2);
    let keys = report["jwks"]["keys"].as_array().unwrap();
    let by_kid = |kid: &str| keys.iter().find(|k| k["kid"] == kid).unwrap();
    assert_eq!(by_kid(&issuer.signing_kid())["key"], "RSA 2048 bits");
    assert_eq!(by_kid(&ec)["key"], "EC P-256");
    assert_eq!(by_kid(&ec)["alg"], "ES256");
    assert!(
        by_kid("encryption")["skipped_because"]
            .as_str()
            .unwrap()
            .contains(r#"use "enc" is not "sig""#)
    );
    assert!(
        by_kid("secret")["skipped_because"]
            .as_str()
            .unwrap()
            .contains("RFC 8725")
    );
    assert_eq!(report["verifier"]["loads_keys"], true);

    let (code, out, _) = run(&["discover", &issuer.issuer()], "");
    assert_eq!(code, 0);
    assert!(out.contains("SKIPPED  kid encryption"), "{out}");
    assert!(out.contains("keys used for 5 min"), "{out}");
}

#[test]
fn discover_fails_when_the_document_names_another_issuer() {
    let issuer = issuer();
    issuer.set_discovery_issuer("https://impostor.example");
    let (code, report) = run_json(&["discover", &issuer.issuer()], "");
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["discovery"]["issuer_matches"], false);
    assert_eq!(report["verifier"]["code"], "discovery_issuer_mismatch");
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("OpenID Connect Discovery 1.0 §4.3")
    );
}

/// What a hostile issuer or token puts in names and values to take over a terminal: an escape
/// sequence that clears the screen, an 8-bit CSI (U+009B), a right-to-left override, DEL, and
/// a newline followed by a forged verdict.
const HOSTILE: &str = "\u{1b}[2J\u{9b}31m\u{202e}\u{7f}\nverifier: loads the keys (ok)";

/// Checks that `out` holds no character that acts on a terminal (every line ends with the only
/// control character left, `\n`), that no line is the forged verdict, and that the hostile text
/// is shown escaped.
fn assert_terminal_safe(out: &str) {
    let acting: Vec<char> = out
        .chars()
        .filter(|&c| c != '\n' && (c.is_control() || ('\u{2028}'..='\u{202e}').contains(&c)))
        .collect();
    assert!(acting.is_empty(), "{acting:?} reach the terminal:\n{out}");
    assert!(
        !out.lines()
            .any(|l| l.trim() == "verifier: loads the keys (ok)"),
        "a forged line:\n{out}"
    );
    assert!(out.contains(r"\u{1b}[2J\u{9b}31m\u{202e}\u{7f}\n"), "{out}");
}

/// An issuer on 127.0.0.1 that serves a discovery document with a hostile member name and value
/// and a key set with a hostile `kid` and `kty`: plain HTTP/1.1 over a `TcpListener`, one
/// response per connection, for as long as the test process runs.
fn hostile_issuer() -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut discovery = json!({ "issuer": base, "jwks_uri": format!("{base}/jwks") });
    discovery[HOSTILE] = json!(HOSTILE);
    let jwks = json!({ "keys": [{ "kty": HOSTILE, "kid": HOSTILE }] });
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            // The rest of the request head, up to the blank line.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = if request_line.contains("/.well-known/openid-configuration") {
                discovery.to_string()
            } else {
                jwks.to_string()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

#[test]
fn discover_escapes_what_the_issuer_controls() {
    let issuer = hostile_issuer();
    let (code, out, err) = run(&["discover", &issuer], "");
    assert_eq!(code, 1, "no usable key: {out}{err}");
    assert!(out.contains("SKIPPED  kid"), "{out}");
    assert_terminal_safe(&out);
    // JSON output: the same values, escaped as JSON.
    let (code, out, _) = run(&["discover", &issuer, "--json"], "");
    assert_eq!(code, 1);
    assert!(
        !out.chars()
            .any(|c| c != '\n' && (c.is_control() || c == '\u{202e}')),
        "{out}"
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["jwks"]["keys"][0]["kid"], HOSTILE);
    assert_eq!(report["discovery"]["document"][HOSTILE], HOSTILE);
}

#[test]
fn verify_and_inspect_escape_what_the_token_controls() {
    let issuer = issuer();
    issuer.add_key_with_kid(KeyAlg::RS256, HOSTILE);
    issuer.set_signing_key(HOSTILE);
    let token = issuer
        .token()
        .aud("api")
        .claim(HOSTILE, json!(HOSTILE))
        .claim("kubernetes.io", json!({ "namespace": HOSTILE }))
        .sign();
    let (code, out, err) = run(
        &["verify", "--issuer", &issuer.issuer(), "--audience", "api"],
        &token,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pass  key"), "{out}");
    assert_terminal_safe(&out);
    let (code, out, err) = run(&["inspect"], &token);
    assert_eq!(code, 0, "{err}");
    assert_terminal_safe(&out);
}

/// The command `inspect` suggests ("verify with: ...") quotes what the token chose, so that
/// pasting it into a shell runs `oidc-bearer verify` with the token's issuer and audience as
/// arguments, and nothing else: an `iss` or `aud` with `;`, `$(...)`, spaces or quotes must not
/// become shell syntax. Checked by letting `sh` parse the suggested command, with `printf` in the
/// place of `oidc-bearer verify`.
#[test]
fn inspect_suggests_a_command_that_the_shell_reads_as_the_tokens_own_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "").unwrap();
    let issuer = issuer();
    let iss = "https://evil.example/a b; touch pwned-iss; echo $(touch pwned-sub) 'q' \"d\" \\";
    let aud = "api`touch pwned-aud`";
    let sa = "x;touch${IFS}pwned-sa;@p.iam.gserviceaccount.com";
    let sa_jwks = format!("https://www.googleapis.com/service_accounts/v1/jwk/{sa}");
    let rows = [
        (iss, aud, vec!["--issuer", iss, "--audience", aud]),
        (
            sa,
            aud,
            vec!["--issuer", sa, "--audience", aud, "--jwks-uri", &sa_jwks],
        ),
    ];
    for (iss, aud, expected) in rows {
        let token = issuer.token().iss(iss).aud(aud).sign();
        let (code, out, err) = run(&["inspect"], &token);
        assert_eq!(code, 0, "{err}");
        let hint = out
            .lines()
            .find_map(|l| l.strip_prefix("verify with: oidc-bearer verify "))
            .unwrap_or_else(|| panic!("no suggested command:\n{out}"));
        let (code, args, err) = {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s\\n' {hint}"))
                .current_dir(dir.path())
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let stderr = String::from_utf8(out.stderr).unwrap();
            (out.status.code(), text, stderr)
        };
        assert_eq!(code, Some(0), "{hint}: {err}");
        assert_eq!(args.lines().collect::<Vec<_>>(), expected, "{hint}");
        let made: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(made, ["token"], "{hint}");
    }
}
