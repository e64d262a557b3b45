//! `oidc-bearer inspect`: the header and claims, unverified, and what kind of token this is.

use std::borrow::Cow;
use std::path::Path;

use oidc_bearer::issuers::google::GOOGLE_ISSUER;
use serde_json::{Value, json};

use crate::jwt::{self, Decoded};
use crate::output::{self, say, time_json, time_text};
use crate::{Outcome, UsageError};

/// The issuer of legacy, secret-based Kubernetes service-account tokens.
const LEGACY_KUBERNETES_ISSUER: &str = "kubernetes/serviceaccount";
/// The other spelling of Google's issuer in older ID tokens (the library's Google preset accepts it).
const GOOGLE_ISSUER_NO_SCHEME: &str = "accounts.google.com";
/// Where Google publishes a service account's keys: `{base}/{email}`.
const SERVICE_ACCOUNT_JWKS_BASE: &str = "https://www.googleapis.com/service_accounts/v1/jwk";
/// GKE clusters' issuers start with this.
const GKE_ISSUER_PREFIX: &str = "https://container.googleapis.com/v1/projects/";

/// What kind of token this is, as far as its (unverified) contents tell.
pub(crate) struct Kind {
    /// A stable name for scripts.
    pub(crate) id: &'static str,
    /// What it is, in a sentence.
    pub(crate) description: String,
    /// How to verify it with this tool.
    pub(crate) hint: String,
}

/// Recognises Kubernetes bound and legacy service-account tokens, Google ID tokens, JWTs that a
/// Google service account signed through IAM `signJwt`, and RFC 9068 access tokens.
pub(crate) fn kind(token: &Decoded) -> Kind {
    let iss = token.str_claim("iss").unwrap_or_default();
    let aud = token.audiences().into_iter().next().unwrap_or_default();
    let verify = |extra: &str| {
        let (iss, aud) = (shell_word(iss), shell_word(&aud));
        format!("oidc-bearer verify --issuer {iss} --audience {aud}{extra} < token")
    };
    if let Some(Value::Object(k8s)) = token.claims.get("kubernetes.io") {
        let namespace = k8s.get("namespace").and_then(Value::as_str);
        let account = k8s
            .get("serviceaccount")
            .and_then(|sa| sa.get("name"))
            .and_then(Value::as_str);
        let bound_to = ["pod", "secret", "node"]
            .into_iter()
            .find_map(|what| {
                let name = k8s.get(what)?.get("name")?.as_str()?;
                Some(format!(", bound to {what} {name}"))
            })
            .unwrap_or_default();
        let cluster = if iss.starts_with(GKE_ISSUER_PREFIX) {
            " of a GKE cluster"
        } else {
            ""
        };
        return Kind {
            id: "kubernetes_bound",
            description: format!(
                "Kubernetes bound service-account token{cluster} (TokenRequest / projected volume) \
                 for {}/{}{bound_to}",
                namespace.unwrap_or("?"),
                account.unwrap_or("?")
            ),
            hint: verify(""),
        };
    }
    if iss == LEGACY_KUBERNETES_ISSUER {
        let claim = |name: &str| {
            token
                .str_claim(&format!("kubernetes.io/serviceaccount/{name}"))
                .unwrap_or("?")
                .to_owned()
        };
        return Kind {
            id: "kubernetes_legacy",
            description: format!(
                "legacy Kubernetes service-account token (from a Secret) for {}/{}: it never \
                 expires and names no audience",
                claim("namespace"),
                claim("service-account.name")
            ),
            hint: "oidc-bearer verify --legacy --pem sa.pub --kid <kid> < token \
                   (the cluster's --service-account-key-file)"
                .into(),
        };
    }
    if iss == GOOGLE_ISSUER || iss == GOOGLE_ISSUER_NO_SCHEME {
        let who = token
            .str_claim("email")
            .map(|e| format!(" for {e}"))
            .unwrap_or_default();
        let instance = token
            .claims
            .get("google")
            .and_then(|g| g.get("compute_engine"))
            .map_or("", |_| " (a Compute Engine instance identity token)");
        return Kind {
            id: "google_id_token",
            description: format!("Google ID token{who}{instance}"),
            hint: format!(
                "oidc-bearer verify --issuer {GOOGLE_ISSUER} --audience {} < token",
                shell_word(&aud)
            ),
        };
    }
    if iss.contains('@') && iss.ends_with(".gserviceaccount.com") {
        return Kind {
            id: "google_sign_jwt",
            description: format!(
                "JWT signed by Google service account {iss} through IAM signJwt (its claims are \
                 whatever the signer chose)"
            ),
            hint: format!(
                "oidc-bearer verify --issuer {} --audience {} --jwks-uri {} < token",
                shell_word(iss),
                shell_word(&aud),
                shell_word(&format!("{SERVICE_ACCOUNT_JWKS_BASE}/{iss}"))
            ),
        };
    }
    let typ = token.str_header("typ").unwrap_or_default();
    if typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt") {
        return Kind {
            id: "access_token",
            description: format!("OAuth 2.0 access token (RFC 9068) of {iss}"),
            hint: verify(" --typ at+jwt"),
        };
    }
    Kind {
        id: "jwt",
        description: if iss.is_empty() {
            "JWT without an issuer".into()
        } else {
            format!("JWT of issuer {iss}")
        },
        hint: verify(""),
    }
}

/// `text` as one word of a POSIX shell command: as it is when it holds nothing the shell reads,
/// else in single quotes (a `'` in it written `'\''`). The suggested command is meant to be
/// pasted, and the token chose these values: `;`, `$(...)` or a space must stay in the argument.
fn shell_word(text: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(format!("'{}'", text.replace('\'', r"'\''")))
}

/// Prints the token's header, claims and kind; never contacts anything.
pub(crate) fn run(path: &Path, json: bool) -> Result<Outcome, UsageError> {
    let token = crate::input::read_token(path)?;
    let decoded = jwt::decode(&token).map_err(UsageError)?;
    let now = output::now();
    let kind = kind(&decoded);
    let times: Vec<(&str, i64)> = ["iat", "nbf", "exp"]
        .into_iter()
        .filter_map(|name| decoded.time_claim(name).map(|t| (name, t)))
        .collect();
    // RFC 9449 §6.1: a token bound to a DPoP key is accepted only with the `DPoP` scheme and a
    // proof signed by that key (the layer's `with_dpop`).
    let dpop_jkt = decoded
        .claims
        .get("cnf")
        .and_then(|cnf| cnf.get("jkt"))
        .and_then(Value::as_str);
    if json {
        let times: serde_json::Map<String, Value> = times
            .iter()
            .map(|&(name, t)| (name.to_owned(), time_json(name, t, now)))
            .collect();
        output::print_json(&json!({
            "verified": false,
            "kind": kind.id,
            "description": kind.description,
            "header": decoded.header,
            "claims": decoded.claims,
            "times": times,
            "signature_bytes": decoded.signature_len,
            "dpop_jkt": dpop_jkt,
            "verify_with": kind.hint,
        }));
        return Ok(Outcome::Ok);
    }
    say!(
        "NOT VERIFIED: decoded only; anyone can write these contents. Check them with `oidc-bearer verify`."
    );
    say!("kind: {}", kind.description);
    say!();
    say!("header:");
    for (name, value) in &decoded.header {
        say!("  {name}: {value}");
    }
    say!("claims:");
    for (name, value) in &decoded.claims {
        match times.iter().find(|(n, _)| n == name) {
            Some(&(name, t)) => say!("  {name}: {t} = {}", time_text(name, t, now)),
            None => say!("  {name}: {value}"),
        }
    }
    if !times.iter().any(|(n, _)| *n == "exp") {
        say!("  (no exp: this token never expires)");
    }
    say!("signature: {} bytes", decoded.signature_len);
    if let Some(jkt) = dpop_jkt {
        say!(
            "DPoP-bound (RFC 9449): only valid as `Authorization: DPoP` with a proof signed by the key of thumbprint {}",
            oidc_bearer::Escaped(jkt)
        );
    }
    say!();
    say!("verify with: {}", kind.hint);
    Ok(Outcome::Ok)
}
