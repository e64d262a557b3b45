//! Review R3 of split B: the core's hidden items that the registry uses
//! (`oidc_bearer::__private::IssuerRead`, `Verifier::{verify_parsed, verify_parsed_shared,
//! cached_key, downgrade}`), called from a crate outside the core as any user crate can: none of
//! them gives an acceptance, a token-cache entry or a cached answer for bytes the answering
//! verifier did not verify, nor skips one of that verifier's checks (size cap, `alg`, `typ`,
//! `crit`, repeated members, signature, `iss`, `aud`, `exp`/`nbf`). (The registry's fast path
//! after an eviction: this crate's `fast_path` unit tests.)

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_bearer::__private::{IssuerRead, VerifierAccess as _};
use oidc_bearer::cache::TokenKey;
use oidc_bearer::claims::DefaultClaims;
use oidc_bearer::clock::ManualClock;
use oidc_bearer::{Verifier, VerifierBuilder, VerifyError};
use oidc_bearer_testing::now;

use crate::refusal_order::{
    AUD, HEADER, ISS, SECRET, claims, signed, signed_segments, with_signature_of,
};

/// The verifier's own size cap: under it for ordinary tokens, over it for a padded one.
const MAX_TOKEN_BYTES: usize = 1024;

fn hs256_verifier(builder: impl FnOnce(VerifierBuilder) -> VerifierBuilder) -> Verifier {
    builder(Verifier::shared_secret_builder(ISS, AUD, SECRET).unwrap())
        .with_max_token_bytes(MAX_TOKEN_BYTES)
        .build()
        .unwrap()
}

fn code<T>(result: Result<T, VerifyError>) -> &'static str {
    result.map_or_else(|e| e.code(), |_| "ok")
}

fn key(token: &str) -> TokenKey<'_> {
    TokenKey::new(token.as_bytes()).unwrap()
}

/// `token` through the hidden path a registry takes: parsed by [`IssuerRead`] with no size cap of
/// its own (the most a caller outside the core can ask), then handed to `verifier`.
async fn through_read(verifier: &Verifier, token: &str) -> [&'static str; 2] {
    let shared = match IssuerRead::parse(token, usize::MAX) {
        Ok(read) => code(verifier.verify_parsed_shared::<DefaultClaims>(&read).await),
        Err(e) => e.code(),
    };
    let owned = match IssuerRead::parse(token, usize::MAX) {
        Ok(read) => code(verifier.verify_parsed::<DefaultClaims>(&read).await),
        Err(e) => e.code(),
    };
    [shared, owned]
}

/// Every refusal of `Verifier::verify` is a refusal, with the same code, of the verifier given an
/// `IssuerRead` parsed without a cap, and nothing refused is cached or answered from the cache
/// (`cached_key`): the read carries no check of its own that the verifier then skips.
#[tokio::test]
async fn an_issuer_read_is_refused_by_every_rule_the_verifier_has() {
    let verifier = hs256_verifier(|b| b.with_required_typ("JWT"));
    let b64 = |text: &str| URL_SAFE_NO_PAD.encode(text);
    let t = now();
    let accepted = signed(&claims(""));
    let other = signed(&claims(r#","role":"admin""#));
    assert_eq!(through_read(&verifier, &accepted).await, ["ok"; 2]);
    let mut flipped = URL_SAFE_NO_PAD
        .decode(accepted.rsplit_once('.').unwrap().1)
        .unwrap();
    flipped[3] ^= 1;
    let refused = [
        // Over the verifier's cap, though the read allowed any size.
        signed(&claims(&format!(
            r#","pad":"{}""#,
            "x".repeat(2 * MAX_TOKEN_BYTES)
        ))),
        // Times, audience, issuer (another issuer under the same secret).
        signed(&format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{}}}"#,
            t - 3600
        )),
        signed(&format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"nbf":{}}}"#,
            t + 7200,
            t + 3600
        )),
        signed(&format!(
            r#"{{"iss":"{ISS}","aud":"other","exp":{}}}"#,
            t + 600
        )),
        signed(&format!(
            r#"{{"iss":"https://other.internal","aud":"{AUD}","exp":{}}}"#,
            t + 600
        )),
        // Header: `alg`, `typ`, `crit`, a repeated member.
        signed_segments(r#"{"alg":"none","typ":"JWT"}"#, &b64(&claims(""))),
        signed_segments(r#"{"alg":"HS256","typ":"at+jwt"}"#, &b64(&claims(""))),
        signed_segments(
            r#"{"alg":"HS256","typ":"JWT","crit":["exp"],"exp":1}"#,
            &b64(&claims("")),
        ),
        signed_segments(
            r#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#,
            &b64(&claims("")),
        ),
        // A repeated payload member, top-level and nested.
        signed(&claims(r#","sub":"mallory""#)),
        signed_segments(HEADER, &b64(&claims(r#","x":{"a":1,"a":2}"#))),
        // The signature: flipped, and another accepted token's over these claims.
        format!(
            "{}.{}",
            accepted.rsplit_once('.').unwrap().0,
            URL_SAFE_NO_PAD.encode(flipped)
        ),
        with_signature_of(&other, &accepted),
    ];
    for token in &refused {
        let shown = &token[..token.len().min(120)];
        let expected = code(verifier.verify::<DefaultClaims>(token).await);
        assert_ne!(expected, "ok", "the row itself: {shown}");
        for _ in 0..2 {
            assert_eq!(
                through_read(&verifier, token).await,
                [expected; 2],
                "{shown}"
            );
        }
        assert!(
            verifier.cached_key::<DefaultClaims>(&key(token)).is_none(),
            "cached_key answered for a refused token: {shown}"
        );
    }
    assert_eq!(verifier.token_cache_stats().unwrap().entries, 1);
}

/// `verify_parsed_shared` hands back the digest of the bytes it verified (what the registry files
/// in its fast-path index), and `cached_key` — callable by anyone with a `TokenKey`, which is only
/// ever its own bytes' — answers for exactly the tokens the verifier accepted, with the claims it
/// cached, and not for another signing input under an accepted token's signature.
#[tokio::test]
async fn the_digest_handed_back_and_cached_key_belong_to_the_verified_bytes_only() {
    let verifier = hs256_verifier(|b| b);
    let accepted = signed(&claims(""));
    let other = signed(&claims(r#","role":"admin""#));
    let swapped = with_signature_of(&other, &accepted);
    assert!(
        verifier
            .cached_key::<DefaultClaims>(&key(&accepted))
            .is_none()
    );
    let read = IssuerRead::parse(&accepted, usize::MAX).unwrap();
    let (claims, digest) = verifier
        .verify_parsed_shared::<DefaultClaims>(&read)
        .await
        .unwrap();
    assert_eq!(digest.as_ref(), Some(key(&accepted).digest()));
    let cached = verifier
        .cached_key::<DefaultClaims>(&key(&accepted))
        .unwrap();
    assert!(Arc::ptr_eq(&cached, &claims));
    assert!(
        verifier
            .cached_key::<DefaultClaims>(&key(&swapped))
            .is_none()
    );
    // Both accepted now, each under its own signature: the splice still matches neither.
    let read = IssuerRead::parse(&other, usize::MAX).unwrap();
    let (_, digest) = verifier
        .verify_parsed_shared::<DefaultClaims>(&read)
        .await
        .unwrap();
    assert_eq!(digest.as_ref(), Some(key(&other).digest()));
    assert!(
        verifier
            .cached_key::<DefaultClaims>(&key(&swapped))
            .is_none()
    );
    assert_eq!(
        code(verifier.verify::<DefaultClaims>(&swapped).await),
        "invalid_signature"
    );
    // Without a token cache there is no digest to index, and nothing to answer from.
    let uncached = hs256_verifier(VerifierBuilder::without_token_cache);
    let read = IssuerRead::parse(&accepted, usize::MAX).unwrap();
    let (_, digest) = uncached
        .verify_parsed_shared::<DefaultClaims>(&read)
        .await
        .unwrap();
    assert_eq!(digest, None);
    assert!(
        uncached
            .cached_key::<DefaultClaims>(&key(&accepted))
            .is_none()
    );
    // A weak reference keeps nothing alive.
    let weak = uncached.downgrade();
    assert!(weak.upgrade().is_some());
    drop(uncached);
    assert!(weak.upgrade().is_none());
}

/// `cached_key` has no size check and no parse, but keeps the verifier's time rules: past `exp`
/// (and the leeway) it answers nothing, as the full path refuses.
#[tokio::test]
async fn cached_key_answers_only_while_the_verifier_would_accept() {
    let clock = ManualClock::at_unix(now() as u64);
    let verifier = hs256_verifier(|b| b.with_clock(clock.clone()));
    let token = signed(&claims(""));
    let read = IssuerRead::parse(&token, usize::MAX).unwrap();
    verifier
        .verify_parsed_shared::<DefaultClaims>(&read)
        .await
        .unwrap();
    assert!(verifier.cached_key::<DefaultClaims>(&key(&token)).is_some());
    clock.advance(Duration::from_secs(600 + 60 + 1));
    assert!(
        verifier.cached_key::<DefaultClaims>(&key(&token)).is_none(),
        "cached_key answered for an expired token"
    );
    assert_eq!(
        code(verifier.verify::<DefaultClaims>(&token).await),
        "expired"
    );
}
