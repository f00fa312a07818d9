//! Contacts (phone numbers, email addresses) kept pseudonymous: the derived tables hold the
//! contact masked and a keyed pseudonym of it, never the contact itself. A search by a full
//! contact normalises it and applies the same keyed hash, so it finds the conversation
//! without the contact being stored.

use crate::config::Secret;
use crate::hmac::hmac_sha256;

/// One form per contact, so the ingested and the searched spelling hash alike: an email
/// address in lower case; a phone number in E.164 form (`+` and digits; `00` read as `+`;
/// spaces, dashes, dots, slashes and brackets dropped). A number given without its country
/// code stays without it (`+` and its national digits). None for anything else.
pub fn normalize(contact: &str) -> Option<String> {
    let contact = contact.trim();
    let lower = contact.to_lowercase();
    if let Some(email) = lower.strip_prefix("mailto:").or(Some(lower.as_str())) {
        if let Some((local, domain)) = email.split_once('@') {
            let plain = |s: &str| !s.is_empty() && !s.contains(['@', ' ']);
            return (plain(local) && plain(domain) && domain.contains('.'))
                .then(|| email.to_owned());
        }
    }
    let number = lower.strip_prefix("tel:").unwrap_or(&lower);
    let kept: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '/' | '(' | ')'))
        .collect();
    let digits = kept
        .strip_prefix('+')
        .or_else(|| kept.strip_prefix("00"))
        .unwrap_or(&kept);
    let valid = (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
    valid.then(|| format!("+{digits}"))
}

/// The keyed pseudonym of a normalised contact: HMAC-SHA-256 under `key`, in hex.
pub fn pseudonym(key: &Secret, normalized: &str) -> String {
    hex::encode(hmac_sha256(key.expose().as_bytes(), normalized.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_and_emails_have_one_form() {
        for spelling in [
            "+1 (555) 123-4567",
            "001-555-123-4567",
            "tel:+15551234567",
            "+1.555.123.4567",
        ] {
            assert_eq!(
                normalize(spelling).as_deref(),
                Some("+15551234567"),
                "{spelling}"
            );
        }
        assert_eq!(
            normalize(" Jane.Doe@Example.COM ").as_deref(),
            Some("jane.doe@example.com")
        );
        assert_eq!(normalize("mailto:a@b.io").as_deref(), Some("a@b.io"));
        for not_a_contact in [
            "4567",
            "call me",
            "a@b",
            "@example.com",
            "+1 555 CALL NOW",
            "",
        ] {
            assert_eq!(normalize(not_a_contact), None, "{not_a_contact}");
        }
    }

    #[test]
    fn the_key_changes_the_pseudonym() {
        let a = pseudonym(&Secret::new("key-a"), "+15551234567");
        assert_eq!(a, pseudonym(&Secret::new("key-a"), "+15551234567"));
        assert_ne!(a, pseudonym(&Secret::new("key-b"), "+15551234567"));
        assert_eq!(a.len(), 64);
    }
}
