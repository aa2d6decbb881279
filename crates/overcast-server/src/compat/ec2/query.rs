//! EC2 Query parameters: `Name=value` pairs from a form body or a query string, lists
//! flattened 1-based as `Name.N`, structures dotted (`Filter.1.Value.2`). An empty value
//! counts as absent (Terraform sends `Placement.AvailabilityZone=`); a malformed list
//! (`ResourceId.0`, a gap) is refused, never read as shorter.

use std::collections::BTreeMap;

use overcast_types::Error;

use super::fault;

/// The parameters of one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// The pairs of the query string and the form body (the body's win).
    pub fn parse(query: &[u8], body: &[u8]) -> Params {
        let values = form_urlencoded::parse(query)
            .chain(form_urlencoded::parse(body))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Params { values }
    }

    /// Every pair but `leaving_out`'s, sorted, as one text: what identifies a call's
    /// request whatever order its client wrote the pairs in.
    pub fn canonical(&self, leaving_out: &[&str]) -> Vec<u8> {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (key, value) in &self.values {
            if !leaving_out.contains(&key.as_str()) {
                out.append_pair(key, value);
            }
        }
        out.finish().into_bytes()
    }

    /// A value, unless absent or empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A value that must be there: `MissingParameter` naming it.
    pub fn required(&self, name: &str) -> Result<&str, Error> {
        self.text(name).ok_or_else(|| {
            fault(
                "MissingParameter",
                format!("The request must contain the parameter {name}"),
            )
        })
    }

    /// `true` or `false`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Error> {
        self.text(name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(fault(
                    "InvalidParameterValue",
                    format!("Value ({v}) for parameter {name} is invalid. Expected true or false."),
                )),
            })
            .transpose()
    }

    /// A whole number in `min..=max`.
    pub fn number(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, Error> {
        self.text(name)
            .map(|v| match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(fault("InvalidParameterValue", format!(
                    "Value ({v}) for parameter {name} is invalid. Expected a number from {min} to {max}."
                ))),
            })
            .transpose()
    }

    /// The prefixes `Name.1`, `Name.2`, … of a list's members, in order. A list must
    /// count from 1 without gaps.
    pub fn members(&self, name: &str) -> Result<Vec<String>, Error> {
        let prefix = format!("{name}.");
        let mut indexes: Vec<u32> = self
            .values
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| {
                let rest = &k[prefix.len()..];
                let digits = rest.split('.').next().unwrap_or_default();
                (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| digits.parse::<u32>().ok())
                    .flatten()
            })
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        for (position, index) in indexes.iter().enumerate() {
            if *index as usize != position + 1 {
                return Err(fault(
                    "InvalidParameterValue",
                    format!(
                    "The list {name} must be numbered from 1 without gaps ({name}.{index} found)"
                ),
                ));
            }
        }
        Ok(indexes.iter().map(|i| format!("{name}.{i}")).collect())
    }

    /// A list of values, `Name.1`, `Name.2`, … (empty ones left out).
    pub fn list(&self, name: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .members(name)?
            .iter()
            .filter_map(|m| self.text(m).map(str::to_string))
            .collect())
    }

    /// `Filter.N.Name` with its `Filter.N.Value.M`, in order.
    pub fn filters(&self) -> Result<Vec<(String, Vec<String>)>, Error> {
        self.members("Filter")?
            .iter()
            .map(|m| {
                let name = self.required(&format!("{m}.Name"))?.to_string();
                Ok((name, self.list(&format!("{m}.Value"))?))
            })
            .collect()
    }

    /// `Tag.N.Key` with its `Tag.N.Value` (empty when absent), under `name`.
    pub fn tags(&self, name: &str) -> Result<Vec<(String, String)>, Error> {
        self.members(name)?
            .iter()
            .map(|m| {
                let key = self.required(&format!("{m}.Key"))?.to_string();
                let value = self.text(&format!("{m}.Value")).unwrap_or_default();
                Ok((key, value.to_string()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(body: &str) -> Params {
        Params::parse(b"", body.as_bytes())
    }

    #[test]
    fn lists_filters_and_tags_read_as_clients_send_them() {
        let p = params(
            "Action=DescribeInstances&InstanceId.2=i-2&InstanceId.1=i-1\
             &Filter.1.Name=tag%3Astage&Filter.1.Value.1=dev&Filter.1.Value.2=test\
             &Filter.2.Name=instance-state-name&Filter.2.Value.1=running\
             &TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=web\
             &Placement.AvailabilityZone=&DryRun=true",
        );
        assert_eq!(p.list("InstanceId").unwrap(), ["i-1", "i-2"]);
        assert_eq!(
            p.filters().unwrap(),
            [
                ("tag:stage".to_string(), vec!["dev".into(), "test".into()]),
                ("instance-state-name".into(), vec!["running".into()])
            ]
        );
        assert_eq!(
            p.tags("TagSpecification.1.Tag").unwrap(),
            [("Name".to_string(), "web".to_string())]
        );
        assert_eq!(
            p.text("Placement.AvailabilityZone"),
            None,
            "empty is absent"
        );
        assert_eq!(p.bool("DryRun").unwrap(), Some(true));
    }

    #[test]
    fn ten_members_sort_by_number_not_text() {
        let body: Vec<String> = (1..=11).map(|i| format!("InstanceId.{i}=i-{i}")).collect();
        let ids = params(&body.join("&")).list("InstanceId").unwrap();
        assert_eq!(ids.first().map(String::as_str), Some("i-1"));
        assert_eq!(ids.last().map(String::as_str), Some("i-11"));
        assert_eq!(ids.len(), 11);
    }

    #[test]
    fn malformed_lists_and_values_are_refused_naming_the_parameter() {
        let zero = params("ResourceId.0=i-1").list("ResourceId").unwrap_err();
        assert_eq!(zero.code, "InvalidParameterValue");
        assert!(zero.message.contains("ResourceId.0"), "{}", zero.message);
        let gap = params("InstanceId.1=a&InstanceId.3=c")
            .list("InstanceId")
            .unwrap_err();
        assert!(gap.message.contains("InstanceId.3"));
        let flag = params("DryRun=yes").bool("DryRun").unwrap_err();
        assert!(flag.message.contains("DryRun"));
        let count = params("MaxResults=2")
            .number("MaxResults", 5, 1000)
            .unwrap_err();
        assert!(count.message.contains("MaxResults"));
        let nameless = params("Filter.1.Value.1=x").filters().unwrap_err();
        assert_eq!(nameless.code, "MissingParameter");
        assert!(nameless.message.contains("Filter.1.Name"));
    }

    #[test]
    fn a_get_query_and_a_post_body_both_count() {
        let p = Params::parse(b"Action=AuthorizeSecurityGroupIngress&GroupName=web", b"");
        assert_eq!(p.required("GroupName").unwrap(), "web");
        let missing = p.required("IpProtocol").unwrap_err();
        assert_eq!(missing.code, "MissingParameter");
    }
}
