//! Google Kubernetes Engine: the issuer of a cluster's service-account tokens, and [`GkeClusters`], a
//! registry pattern trusting every cluster of some projects.
//!
//! A GKE cluster's issuer is public (`https://container.googleapis.com/v1/projects/…`) and serves
//! discovery and its keys to anyone, so a service anywhere can verify its pods' tokens.

use std::collections::HashSet;
use std::fmt;

use super::Configure;
use crate::issuers::IssuerPattern;
use crate::{Verifier, VerifierBuilder};

/// What every GKE cluster's issuer starts with.
const GKE_ISSUER_PREFIX: &str = "https://container.googleapis.com/v1/projects/";

/// The issuer of a GKE cluster's service-account tokens:
/// `https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{cluster}`.
///
/// `location` is the cluster's region (regional clusters) or zone (zonal clusters); `kubectl get
/// --raw /.well-known/openid-configuration` in the cluster shows the exact value.
///
/// ```
/// assert_eq!(
///     oidc_bearer::issuers::gke::gke_issuer("my-project", "europe-west1", "prod"),
///     "https://container.googleapis.com/v1/projects/my-project/locations/europe-west1/clusters/prod",
/// );
/// ```
pub fn gke_issuer(project: &str, location: &str, cluster: &str) -> String {
    format!("{GKE_ISSUER_PREFIX}{project}/locations/{location}/clusters/{cluster}")
}

/// A GKE cluster's issuer taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GkeCluster<'a> {
    /// The project id.
    project: &'a str,
    /// The region or zone.
    location: &'a str,
    /// The cluster's name.
    cluster: &'a str,
}

impl<'a> GkeCluster<'a> {
    /// Parses a GKE issuer strictly: exactly the form [`gke_issuer`] makes, each part made of lowercase
    /// letters, digits and `-` (what GCP allows in project ids, locations and cluster names), nothing
    /// after the cluster's name. `None` otherwise.
    fn parse(issuer: &'a str) -> Option<Self> {
        let rest = issuer.strip_prefix(GKE_ISSUER_PREFIX)?;
        let mut parts = rest.split('/');
        let mut next = || parts.next();
        let (
            Some(project),
            Some("locations"),
            Some(location),
            Some("clusters"),
            Some(cluster),
            None,
        ) = (next(), next(), next(), next(), next(), next())
        else {
            return None;
        };
        if ![project, location, cluster].into_iter().all(valid_part) {
            return None;
        }
        Some(Self {
            project,
            location,
            cluster,
        })
    }
}

/// GCP names: 1 to 63 lowercase letters, digits and hyphens (project ids may also hold a domain
/// prefix, `example.com:project`, which we accept too).
fn valid_part(part: &str) -> bool {
    let name = match part.split_once(':') {
        Some((domain, name)) => {
            let domain_ok = !domain.is_empty()
                && domain.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !domain_ok {
                return false;
            }
            name
        }
        None => part,
    };
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A registry pattern that trusts the GKE clusters of some projects (optionally only in some
/// locations), each with discovery at its own issuer and the same audience.
///
/// The project is the trust boundary: anyone who can create a cluster in a listed project can mint
/// tokens this pattern accepts. Each distinct cluster name seen costs at most one discovery per
/// negative-cache period when it does not exist.
///
/// ```
/// use oidc_bearer::issuers::IssuerPattern;
/// use oidc_bearer::issuers::gke::{GkeClusters, gke_issuer};
///
/// let pattern = GkeClusters::new("my-service").project("prod-1").location("europe-west1");
/// assert!(pattern.verifier_for(&gke_issuer("prod-1", "europe-west1", "any-cluster")).is_some());
/// assert!(pattern.verifier_for(&gke_issuer("prod-1", "us-east1", "any-cluster")).is_none());
/// assert!(pattern.verifier_for(&gke_issuer("other", "europe-west1", "any-cluster")).is_none());
/// ```
#[derive(Clone)]
#[must_use]
pub struct GkeClusters {
    audience: String,
    projects: HashSet<String>,
    locations: Option<HashSet<String>>,
    configure: Configure,
}

impl GkeClusters {
    /// Trusts no project yet; add them with [`project`](Self::project). Tokens must be meant for
    /// `audience`.
    pub fn new(audience: impl Into<String>) -> Self {
        Self {
            audience: audience.into(),
            projects: HashSet::new(),
            locations: None,
            configure: Configure::default(),
        }
    }

    /// Trusts the clusters of this project (by id).
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.projects.insert(project.into());
        self
    }

    /// Trusts only clusters in this location (region or zone); may be called several times. Without
    /// it, every location is trusted.
    pub fn location(mut self, location: impl Into<String>) -> Self {
        self.locations
            .get_or_insert_with(HashSet::new)
            .insert(location.into());
        self
    }

    /// Finishes each cluster's builder (given with its issuer): cache settings, extra audiences, a
    /// clock, or in tests a discovery URL on 127.0.0.1.
    pub fn with_configure(
        mut self,
        configure: impl Fn(VerifierBuilder, &str) -> VerifierBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure = Configure::new(configure);
        self
    }
}

impl IssuerPattern for GkeClusters {
    fn verifier_for(&self, issuer: &str) -> Option<VerifierBuilder> {
        let cluster = GkeCluster::parse(issuer)?;
        if !self.projects.contains(cluster.project) {
            return None;
        }
        if let Some(locations) = &self.locations
            && !locations.contains(cluster.location)
        {
            return None;
        }
        let builder = Verifier::builder(issuer, self.audience.clone());
        Some(self.configure.apply(builder, issuer))
    }
}

impl fmt::Debug for GkeClusters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GkeClusters")
            .field("audience", &self.audience)
            .field("projects", &self.projects)
            .field("locations", &self.locations)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gke_issuers_are_parsed_strictly() {
        let ok = |p, l, c| Some((p, l, c));
        let rows = [
            (
                gke_issuer("p", "europe-west1", "c"),
                ok("p", "europe-west1", "c"),
            ),
            (
                gke_issuer("example.com:p", "us-central1-a", "c-1"),
                ok("example.com:p", "us-central1-a", "c-1"),
            ),
            (gke_issuer("p", "l", "c") + "/", None),
            (gke_issuer("p", "l", "c") + "/x", None),
            (gke_issuer("p", "l", "c") + "?x=1", None),
            (gke_issuer("P", "l", "c"), None),
            (gke_issuer("p", "l", ""), None),
            (gke_issuer("p", "l", "c%2F"), None),
            (gke_issuer("p", "l", "c.d"), None),
            (gke_issuer("p", "l", &"c".repeat(64)), None),
            (
                "https://container.googleapis.com/v1/projects/p/zones/l/clusters/c".into(),
                None,
            ),
            (
                "http://container.googleapis.com/v1/projects/p/locations/l/clusters/c".into(),
                None,
            ),
            (
                "https://container.googleapis.com.evil/v1/projects/p/locations/l/clusters/c".into(),
                None,
            ),
        ];
        for (issuer, expected) in rows {
            let got = GkeCluster::parse(&issuer).map(|c| (c.project, c.location, c.cluster));
            assert_eq!(got, expected, "{issuer}");
        }
    }

    #[test]
    fn only_listed_projects_and_locations_are_trusted() {
        let pattern = GkeClusters::new("aud")
            .project("a")
            .project("b")
            .with_configure(|b, _| b.with_audience("other"));
        let builder = pattern.verifier_for(&gke_issuer("b", "l", "c")).unwrap();
        let verifier = builder.build().unwrap();
        assert_eq!(verifier.issuer(), gke_issuer("b", "l", "c"));
        assert_eq!(verifier.audiences(), ["aud", "other"]);
        assert!(pattern.verifier_for(&gke_issuer("c", "l", "c")).is_none());
        let located = pattern.location("l1");
        assert!(located.verifier_for(&gke_issuer("a", "l1", "c")).is_some());
        assert!(located.verifier_for(&gke_issuer("a", "l2", "c")).is_none());
    }
}
