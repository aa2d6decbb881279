//! Stages: the ordered lifecycle (dev -> test -> prod by default) every machine belongs to.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{validate_name, Error};

/// How an environment orders its stages and where it keeps a machine's stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StagePolicy {
    /// The stages in promotion order; a machine created without a stage gets the first.
    #[serde(default = "default_stages")]
    pub stages: Vec<String>,
    /// The tag key that holds the stage (CloudMan fleets use `config`).
    #[serde(default = "default_tag_key")]
    pub tag_key: String,
    /// Stages whose bulk stop and terminate need confirmation. Default: the last stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<Vec<String>>,
}

fn default_stages() -> Vec<String> {
    vec!["dev".into(), "test".into(), "prod".into()]
}

fn default_tag_key() -> String {
    "stage".into()
}

impl Default for StagePolicy {
    fn default() -> Self {
        StagePolicy {
            stages: default_stages(),
            tag_key: default_tag_key(),
            protected: None,
        }
    }
}

impl StagePolicy {
    /// Every problem with the policy, each as a field-named error.
    pub fn problems(&self) -> Vec<Error> {
        let mut problems = Vec::new();
        if self.stages.is_empty() {
            problems.push(Error::invalid("stages", "at least one stage is needed"));
        }
        for (i, stage) in self.stages.iter().enumerate() {
            if let Err(e) = validate_name(&format!("stages[{i}]"), stage) {
                problems.push(e);
            }
            if self.stages[..i].contains(stage) {
                problems.push(Error::invalid(
                    format!("stages[{i}]"),
                    format!("stage `{stage}` is listed twice"),
                ));
            }
        }
        if self.tag_key.trim().is_empty() {
            problems.push(Error::invalid("tag_key", "must not be empty"));
        }
        for (i, stage) in self.protected.iter().flatten().enumerate() {
            if !self.stages.contains(stage) {
                problems.push(Error::invalid(
                    format!("protected[{i}]"),
                    format!("`{stage}` is not one of the stages"),
                ));
            }
        }
        problems
    }

    pub fn first(&self) -> &str {
        self.stages.first().map(String::as_str).unwrap_or("dev")
    }

    /// The stage after `stage`, or `None` at the last stage or for an unknown one.
    pub fn next(&self, stage: &str) -> Option<&str> {
        let at = self.stages.iter().position(|s| s == stage)?;
        self.stages.get(at + 1).map(String::as_str)
    }

    pub fn is_protected(&self, stage: &str) -> bool {
        match &self.protected {
            Some(list) => list.iter().any(|s| s == stage),
            None => self.stages.last().is_some_and(|last| last == stage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_promotes_dev_to_test_to_prod() {
        let p = StagePolicy::default();
        assert_eq!(p.first(), "dev");
        assert_eq!(p.next("dev"), Some("test"));
        assert_eq!(p.next("test"), Some("prod"));
        assert_eq!(p.next("prod"), None);
        assert_eq!(p.next("qa"), None);
        assert!(p.is_protected("prod") && !p.is_protected("dev"));
        assert!(p.problems().is_empty());
    }

    #[test]
    fn bad_policies_name_the_field() {
        let p = StagePolicy {
            stages: vec!["dev".into(), "dev".into()],
            tag_key: " ".into(),
            protected: Some(vec!["prod".into()]),
        };
        let fields: Vec<_> = p.problems().into_iter().filter_map(|e| e.field).collect();
        assert_eq!(fields, ["stages[1]", "tag_key", "protected[0]"]);
    }
}
