//! The audit trail: every authenticated change (allowed or denied) appended as one entry,
//! and read back filtered to what the caller's org may see.

use overcast_store::{AuditFilter, PageRequest};
use overcast_types::{AuditEntry, Error, Page};

use crate::app::Core;
use crate::auth::Principal;
use crate::errors::store_error;
use crate::ids::{new_id, now};

/// What one finished authenticated change was, for the audit log.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub method: String,
    pub route: String,
    pub target: String,
    pub operation_id: Option<String>,
    /// `succeeded`, `accepted`, `denied` or `failed`, as the front end judged the answer.
    pub outcome: String,
    pub status_code: u16,
    pub request_id: String,
}

impl Core {
    /// Appends an authenticated change to the audit log.
    pub async fn record_audit(
        &self,
        principal: &Principal,
        record: AuditRecord,
    ) -> Result<(), Error> {
        let entry = AuditEntry {
            id: new_id("au"),
            at: now(),
            token_id: principal.token_id.clone(),
            token_name: principal.token_name.clone(),
            org: principal.org.clone(),
            role: principal.role,
            method: record.method,
            route: record.route,
            target: record.target,
            operation_id: record.operation_id,
            outcome: record.outcome,
            status_code: record.status_code,
            request_id: record.request_id,
        };
        self.store.append_audit(&entry).await.map_err(store_error)
    }

    pub async fn audit(
        &self,
        principal: &Principal,
        mut filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>, Error> {
        filter.org = principal.org_filter();
        let (items, next_page_token) = self
            .store
            .audit(&filter, &page)
            .await
            .map_err(store_error)?;
        Ok(Page::of(items, next_page_token))
    }
}
