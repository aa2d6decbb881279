//! Who owns what and who may see it. A resource's org is its `overcast:org` tag (else its
//! environment's default org); a caller sees its own org's resources and admins see all;
//! what overcast makes carries its owner's tags; what an operation made carries its id.

use overcast_types::{tags, Error, Owned, Role};
use std::collections::BTreeMap;

use crate::auth::Principal;
use crate::environments::Environment;

/// Whether a caller may see a resource owned by `org` (none: admins only).
pub(crate) fn visible_org(principal: &Principal, org: Option<&str>) -> bool {
    match org {
        Some(org) => principal.can_see(org),
        None => principal.role == Role::Admin,
    }
}

/// The resources the caller may see, with their owning org set.
pub(crate) fn visible_only<T: Owned>(
    principal: &Principal,
    environment: &Environment,
    found: Vec<T>,
) -> Vec<T> {
    found
        .into_iter()
        .map(|r| environment.with_owner(r))
        .filter(|r| visible_org(principal, r.org()))
        .collect()
}

/// The resource if the caller may see it; else a 404 as for one that does not exist, so a
/// token cannot probe another org's ids.
pub(crate) fn visible_or_404<T: Owned>(
    principal: &Principal,
    found: Option<T>,
    what: &str,
    id: &str,
) -> Result<T, Error> {
    match found {
        Some(resource) if visible_org(principal, resource.org()) => Ok(resource),
        _ => Err(Error::not_found(what, id)),
    }
}

/// A request's tags plus the ones that say who made the resource: its org and token.
pub(crate) fn owner_tags(
    principal: &Principal,
    given: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = given.clone();
    all.insert(tags::ORG.into(), principal.org.clone());
    all.insert(tags::CREATED_BY.into(), principal.token_name.clone());
    all
}

/// Whether a resource was made by the operation `operation_id`: how a re-run of a create
/// finds what an earlier run made instead of making it twice.
pub(crate) fn made_by<T: Owned>(operation_id: &str) -> impl Fn(&T) -> bool + '_ {
    move |resource| resource.tags().get(tags::OPERATION).map(String::as_str) == Some(operation_id)
}

/// Refuses a resource a request body names (an image to launch from, a key pair, a group
/// to join) when it is another org's, with the 404 a path naming it would get and the
/// field at fault. One the caller's account holds but overcast does not own (a public
/// image, say) has no org tag and is left to the backend.
pub(crate) fn check_referenced<T: Owned>(
    principal: &Principal,
    found: Option<T>,
    what: &str,
    id: &str,
    field: String,
) -> Result<(), Error> {
    match found.as_ref().and_then(|r| r.tags().get(tags::ORG)) {
        Some(org) if !principal.can_see(org) => Err(Error {
            field: Some(field),
            ..Error::not_found(what, id)
        }),
        _ => Ok(()),
    }
}
