//! `oidc-bearer discover ISSUER`: the discovery document, the key set, and what a verifier's key
//! cache would do with them.

use clap::Args;
use oidc_bearer::keys::{KeyCacheSettings, KeySetReport, explain_key_set};
use oidc_bearer::{Verifier, VerifierBuilder};
use serde_json::{Value, json};

use crate::output::{print_json, say, span};
use crate::{HttpArgs, Outcome, UsageError, http};

/// The arguments of `discover`.
#[derive(Args, Debug)]
pub(crate) struct DiscoverArgs {
    /// The issuer URL, exactly as tokens name it in `iss`.
    issuer: String,
    /// Fetch discovery from this URL instead of `{issuer}/.well-known/openid-configuration`.
    #[arg(long, value_name = "URL")]
    discovery_url: Option<String>,
    #[command(flatten)]
    http: HttpArgs,
}

/// The discovery URL of `issuer`: without its trailing `/`, then `/.well-known/openid-configuration`
/// (OpenID Connect Discovery 1.0 §4), where a verifier reads it unless told otherwise.
fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Every key of the JWKS document: used (kid, alg, size or curve) or skipped and why.
fn keys_report(body: &[u8], explained: KeySetReport) -> Result<Vec<Value>, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let raw_keys = raw["keys"].as_array().cloned().unwrap_or_default();
    Ok(explained
        .keys
        .into_iter()
        .zip(raw_keys)
        .map(|(result, raw)| match result {
            Ok(key) => json!({
                "kid": key.kid,
                "kty": raw.get("kty"),
                "alg": key.algorithm.map(|a| a.as_str()),
                "key": key.key_type,
                "used": true,
            }),
            Err(reason) => json!({
                "kid": raw.get("kid"),
                "kty": raw.get("kty"),
                "alg": raw.get("alg"),
                "used": false,
                "skipped_because": reason,
            }),
        })
        .collect())
}

/// What the key cache (with `settings`) does with a key set that lives `lifetime`, served with
/// `cache_control`.
fn cache_report(
    settings: &KeyCacheSettings,
    lifetime: std::time::Duration,
    cache_control: Option<&str>,
    usable: usize,
) -> Value {
    let mut notes = vec![format!(
        "keys used for {} after each fetch ({}; the library clamps it to {}..{}), then refreshed in \
         the background while requests go on with the keys it has",
        span(lifetime.as_secs() as i64),
        match cache_control {
            Some(value) => format!("Cache-Control: {value}"),
            None => format!(
                "no Cache-Control: the default {}",
                span(settings.default_ttl.as_secs() as i64)
            ),
        },
        span(settings.min_ttl.as_secs() as i64),
        span(settings.max_ttl.as_secs() as i64),
    )];
    notes.push(format!(
        "a token naming an unknown kid makes at most one shared refetch per {} (cooldown)",
        span(settings.cooldown.as_secs() as i64)
    ));
    notes.push(format!(
        "if refreshes fail, these keys stay in use for up to {} past their lifetime",
        span(settings.max_stale.as_secs() as i64)
    ));
    if usable == 0 {
        notes.push(
            "no usable key: every token of this issuer would be answered 503 (no_usable_keys)"
                .into(),
        );
    }
    json!({ "lifetime_secs": lifetime.as_secs(), "notes": notes })
}

/// Fetches and reports; exit status 0 when the library's own verifier loads the keys.
pub(crate) async fn run(args: DiscoverArgs, json: bool) -> Result<Outcome, UsageError> {
    // The library's own verifier: its fetches show the documents, its `ready` gives the verdict.
    let mut builder =
        Verifier::builder(args.issuer.clone(), "oidc-bearer-cli").without_token_cache();
    if let Some(url) = &args.discovery_url {
        builder = builder.with_discovery_url(url);
    }
    let builder = http::with_http_args(builder, &args.http)?;
    let verifier = builder.clone().build()?;
    let url = args
        .discovery_url
        .clone()
        .unwrap_or_else(|| discovery_url(&args.issuer));
    let mut report = json!({ "issuer": args.issuer, "discovery_url": url });
    let mut problems: Vec<String> = Vec::new();

    match http::get(&builder, &url).await {
        Err(e) => problems.push(e),
        Ok(fetched) => {
            report["discovery"] = json!({
                "status": fetched.status,
                "cache_control": fetched.cache_control,
                "document": serde_json::from_slice::<Value>(&fetched.body).ok(),
            });
            // The two fields a verifier requires (OpenID Connect Discovery 1.0 §4.2, §3).
            let doc = serde_json::from_slice::<Value>(&fetched.body).unwrap_or_default();
            match (doc["issuer"].as_str(), doc["jwks_uri"].as_str()) {
                (Some(issuer), Some(jwks_uri)) => {
                    // OpenID Connect Discovery 1.0 §4.3: identical, compared as strings.
                    let matches = issuer == args.issuer;
                    report["discovery"]["issuer_matches"] = json!(matches);
                    if !matches {
                        problems.push(format!(
                            "the document names issuer {issuer:?}, not {:?}: a verifier refuses it \
                             (OpenID Connect Discovery 1.0 §4.3, exact match)",
                            args.issuer
                        ));
                    }
                    fetch_jwks(&builder, jwks_uri, &mut report, &mut problems).await;
                }
                _ => problems.push(
                    "the discovery document is not valid: a JSON object whose `issuer` and \
                     `jwks_uri` are strings is required"
                        .into(),
                ),
            }
        }
    }

    // The library's own verdict: a verifier with these settings loads its keys (or says why not).
    let verdict = verifier.ready().await;
    report["verifier"] = match &verdict {
        Ok(()) => json!({ "loads_keys": true }),
        Err(e) => json!({ "loads_keys": false, "code": e.code(), "error": e.to_string() }),
    };
    report["problems"] = json!(problems);

    if json {
        print_json(&report);
    } else {
        print_text(&report);
    }
    Ok(if verdict.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Refused
    })
}

async fn fetch_jwks(
    builder: &VerifierBuilder,
    jwks_uri: &str,
    report: &mut Value,
    problems: &mut Vec<String>,
) {
    report["jwks_uri"] = json!(jwks_uri);
    let fetched = match http::get(builder, jwks_uri).await {
        Ok(fetched) => fetched,
        Err(e) => return problems.push(e),
    };
    // What a verifier with the default key cache makes of it: the library's diagnostics call.
    let settings = KeyCacheSettings::default();
    let cache_control = fetched.cache_control.as_deref();
    let explained = explain_key_set(&fetched.body, cache_control, &settings)
        .map_err(|e| e.to_string())
        .and_then(|explained| {
            let lifetime = explained.lifetime;
            keys_report(&fetched.body, explained).map(|keys| (keys, lifetime))
        });
    match explained {
        Err(e) => problems.push(format!("the key set is not a JWK Set: {e}")),
        Ok((keys, lifetime)) => {
            let usable = keys.iter().filter(|k| k["used"] == true).count();
            report["jwks"] = json!({
                "status": fetched.status,
                "cache_control": fetched.cache_control,
                "keys": keys,
                "usable": usable,
                "skipped": keys.len() - usable,
            });
            report["cache"] = cache_report(&settings, lifetime, cache_control, usable);
        }
    }
}

fn print_text(report: &Value) {
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    say!("issuer:        {}", s(&report["issuer"]));
    say!("discovery URL: {}", s(&report["discovery_url"]));
    if let Some(discovery) = report.get("discovery") {
        say!(
            "  HTTP {}, Cache-Control: {}",
            discovery["status"],
            discovery["cache_control"].as_str().unwrap_or("(none)")
        );
        if let Some(doc) = discovery["document"].as_object() {
            for (name, value) in doc {
                say!("  {name}: {value}");
            }
        }
    }
    if let Some(jwks) = report.get("jwks") {
        say!("jwks_uri:      {}", s(&report["jwks_uri"]));
        say!(
            "  HTTP {}, Cache-Control: {}",
            jwks["status"],
            jwks["cache_control"].as_str().unwrap_or("(none)")
        );
        say!(
            "  {} keys: {} usable, {} skipped",
            jwks["keys"].as_array().map_or(0, Vec::len),
            jwks["usable"],
            jwks["skipped"]
        );
        for key in jwks["keys"].as_array().into_iter().flatten() {
            let kid = key["kid"].as_str().unwrap_or("(no kid)");
            let alg = key["alg"].as_str().unwrap_or("(any fitting alg)");
            if key["used"] == true {
                say!("  used     kid {kid}  alg {alg}  {}", s(&key["key"]));
            } else {
                say!(
                    "  SKIPPED  kid {kid}  kty {}: {}",
                    key["kty"].as_str().unwrap_or("?"),
                    s(&key["skipped_because"])
                );
            }
        }
    }
    if let Some(cache) = report.get("cache") {
        say!("key cache:");
        for note in cache["notes"].as_array().into_iter().flatten() {
            say!("  - {}", s(note));
        }
    }
    for problem in report["problems"].as_array().into_iter().flatten() {
        say!("PROBLEM: {}", s(problem));
    }
    match report["verifier"]["loads_keys"].as_bool() {
        Some(true) => say!("verifier: loads the keys (ok)"),
        _ => say!(
            "verifier: cannot load the keys [{}]: {}",
            s(&report["verifier"]["code"]),
            s(&report["verifier"]["error"])
        ),
    }
}
