//! Both sides of a Google service-account JWT, as one example:
//!
//! - a background **caller** ([`caller`]) obtains a JWT signed for its service account through IAM
//!   Credentials `signJwt` ([`iam`]), with custom claims (`gituser`, `email`), and sends it as a bearer
//!   token;
//! - the **receiver** ([`receiver`]) verifies it against that account's own key set
//!   (`https://www.googleapis.com/service_accounts/v1/jwk/{email}`), trusting an explicit list of
//!   accounts: a token from any other account is refused before any key is fetched.
//!
//! Offline, [`stand_in`] serves `signJwt` on 127.0.0.1 on top of an
//! [`oidc_bearer_testing::TestIssuer`], which also serves each account's keys, so the caller speaks the
//! real protocol and the receiver fetches keys the real way.

pub mod caller;
pub mod iam;
pub mod receiver;
pub mod stand_in;
