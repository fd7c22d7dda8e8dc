//! Lifecycle rules: validation and evaluation, pure.
//!
//! An object expires under an enabled rule whose prefix it starts with once
//! `expire_after_days` have passed since it was written; an unfinished
//! multipart upload is abandoned once `abort_incomplete_uploads_after_days`
//! have passed since it began. Days are whole 24-hour periods.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub const MAX_RULES: usize = 100;
pub const MAX_DAYS: u32 = 36_500;
const MAX_ID_LEN: usize = 255;
const MAX_PREFIX_LEN: usize = 1024;

fn null_is_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleRule {
    pub id: String,
    /// Absent and `null` both mean every key.
    #[serde(default, deserialize_with = "null_is_empty")]
    pub prefix: String,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_incomplete_uploads_after_days: Option<u32>,
}

/// Checks a rule set; the first problem, in words, otherwise.
pub fn validate(rules: &[LifecycleRule]) -> Result<(), String> {
    if rules.len() > MAX_RULES {
        return Err(format!("at most {MAX_RULES} rules per bucket"));
    }
    let mut seen = std::collections::HashSet::new();
    for rule in rules {
        if rule.id.is_empty() || rule.id.len() > MAX_ID_LEN || rule.id.chars().any(char::is_control) {
            return Err(format!("rule ids are 1 to {MAX_ID_LEN} bytes without control characters"));
        }
        if !seen.insert(rule.id.as_str()) {
            return Err(format!("rule id {:?} is used twice", rule.id));
        }
        if rule.prefix.len() > MAX_PREFIX_LEN || rule.prefix.chars().any(char::is_control) {
            return Err(format!("rule {:?}: prefix is too long or holds control characters", rule.id));
        }
        let days = [rule.expire_after_days, rule.abort_incomplete_uploads_after_days];
        if days.iter().all(Option::is_none) {
            return Err(format!("rule {:?} needs expire_after_days or abort_incomplete_uploads_after_days", rule.id));
        }
        if days.iter().flatten().any(|d| !(1..=MAX_DAYS).contains(d)) {
            return Err(format!("rule {:?}: days must be between 1 and {MAX_DAYS}", rule.id));
        }
    }
    Ok(())
}

fn due(since: DateTime<Utc>, days: Option<u32>, as_of: DateTime<Utc>) -> bool {
    days.is_some_and(|d| since + Duration::days(i64::from(d)) <= as_of)
}

/// The id of the first enabled rule under which an object written at
/// `created_at` has expired by `as_of`.
pub fn expiring_rule<'a>(
    rules: &'a [LifecycleRule],
    key: &str,
    created_at: DateTime<Utc>,
    as_of: DateTime<Utc>,
) -> Option<&'a str> {
    rules
        .iter()
        .find(|r| r.enabled && key.starts_with(&r.prefix) && due(created_at, r.expire_after_days, as_of))
        .map(|r| r.id.as_str())
}

/// The id of the first enabled rule under which an upload begun at
/// `initiated_at` is abandoned by `as_of`.
pub fn abandoning_rule<'a>(
    rules: &'a [LifecycleRule],
    key: &str,
    initiated_at: DateTime<Utc>,
    as_of: DateTime<Utc>,
) -> Option<&'a str> {
    rules
        .iter()
        .find(|r| {
            r.enabled && key.starts_with(&r.prefix) && due(initiated_at, r.abort_incomplete_uploads_after_days, as_of)
        })
        .map(|r| r.id.as_str())
}

/// The prefixes worth scanning: the shortest enabled ones that cover the rest.
pub fn scan_prefixes(rules: &[LifecycleRule]) -> Vec<String> {
    let mut prefixes: Vec<&str> = rules.iter().filter(|r| r.enabled).map(|r| r.prefix.as_str()).collect();
    prefixes.sort_unstable();
    let mut covering: Vec<String> = Vec::new();
    for prefix in prefixes {
        if !covering.last().is_some_and(|shorter| prefix.starts_with(shorter.as_str())) {
            covering.push(prefix.to_owned());
        }
    }
    covering
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(id: &str, prefix: &str, expire: Option<u32>, abort: Option<u32>) -> LifecycleRule {
        LifecycleRule {
            id: id.into(),
            prefix: prefix.into(),
            enabled: true,
            expire_after_days: expire,
            abort_incomplete_uploads_after_days: abort,
        }
    }

    fn day(n: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid time") + Duration::days(n)
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(validate(&[rule("a", "", Some(1), None), rule("b", "x/", None, Some(3))]).is_ok());
        assert!(
            validate(&[rule("a", "", Some(1), None), rule("a", "x/", Some(2), None)])
                .expect_err("invalid")
                .contains("twice")
        );
        assert!(validate(&[rule("a", "", Some(0), None)]).expect_err("invalid").contains("between 1"));
        assert!(validate(&[rule("a", "", None, None)]).expect_err("invalid").contains("needs"));
        assert!(validate(&[rule("", "", Some(1), None)]).is_err());
        let many: Vec<_> = (0..=MAX_RULES).map(|i| rule(&i.to_string(), "", Some(1), None)).collect();
        assert!(validate(&many).is_err());
    }

    #[test]
    fn an_absent_or_null_prefix_means_every_key() {
        for text in [
            r#"{"id":"a","enabled":true,"expire_after_days":1}"#,
            r#"{"id":"a","prefix":null,"enabled":true,"expire_after_days":1}"#,
        ] {
            let parsed: LifecycleRule = serde_json::from_str(text).expect(text);
            assert_eq!(parsed, rule("a", "", Some(1), None), "{text}");
        }
        assert!(serde_json::from_str::<LifecycleRule>(r#"{"id":"a","prefix":7,"enabled":true}"#).is_err());
    }

    #[test]
    fn expiry_counts_whole_days_from_creation() {
        let rules = [rule("logs", "logs/", Some(7), None)];
        assert_eq!(expiring_rule(&rules, "logs/a", day(0), day(7)), Some("logs"));
        assert_eq!(expiring_rule(&rules, "logs/a", day(0), day(7) - Duration::seconds(1)), None);
        assert_eq!(expiring_rule(&rules, "other/a", day(0), day(70)), None);
        assert_eq!(abandoning_rule(&rules, "logs/a", day(0), day(70)), None);
    }

    #[test]
    fn scan_prefixes_drop_covered_ones() {
        let rules = [
            rule("a", "logs/", Some(1), None),
            rule("b", "logs/old/", Some(1), None),
            rule("c", "tmp/", Some(1), None),
        ];
        assert_eq!(scan_prefixes(&rules), vec!["logs/".to_owned(), "tmp/".to_owned()]);
        let all = [rule("a", "", Some(1), None), rule("b", "x", Some(1), None)];
        assert_eq!(scan_prefixes(&all), vec![String::new()]);
    }

    fn any_rule() -> impl Strategy<Value = LifecycleRule> {
        ("[a-c]{1,2}", "[ab/]{0,2}", prop::bool::ANY, prop::option::of(1u32..20), prop::option::of(1u32..20)).prop_map(
            |(id, prefix, enabled, expire, abort)| LifecycleRule {
                id,
                prefix,
                enabled,
                expire_after_days: expire,
                abort_incomplete_uploads_after_days: abort,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// An object expires exactly when some enabled matching rule's period has passed,
        /// and once expired it stays expired as time goes on.
        #[test]
        fn expiry_matches_its_definition_and_is_monotone(
            rules in prop::collection::vec(any_rule(), 0..5),
            key in "[ab/]{0,4}",
            age in 0i64..30,
            more in 0i64..30,
        ) {
            let expected = rules.iter().any(|r| r.enabled && key.starts_with(&r.prefix)
                && r.expire_after_days.is_some_and(|d| i64::from(d) <= age));
            prop_assert_eq!(expiring_rule(&rules, &key, day(0), day(age)).is_some(), expected);
            if expected {
                prop_assert!(expiring_rule(&rules, &key, day(0), day(age + more)).is_some());
            }
            let disabled: Vec<_> = rules.iter().cloned().map(|r| LifecycleRule { enabled: false, ..r }).collect();
            prop_assert!(expiring_rule(&disabled, &key, day(0), day(age)).is_none());
        }

        /// Every key an enabled rule matches lies under one of the scan prefixes.
        #[test]
        fn scan_prefixes_cover_every_enabled_rule(rules in prop::collection::vec(any_rule(), 0..6), key in "[ab/]{0,4}") {
            let prefixes = scan_prefixes(&rules);
            if rules.iter().any(|r| r.enabled && key.starts_with(&r.prefix)) {
                prop_assert!(prefixes.iter().any(|p| key.starts_with(p.as_str())));
            }
        }
    }
}
