//! Consent requests: the signed question of the "ask, then consent" journey.
//!
//! A requester (a seller, or a friend asking to follow a purchase feed) signs a
//! [`ConsentRequest`] naming the fields it wants, why, and for how long. The data's owner
//! answers with a grant that names the request ([`crate::Grant::request`]) and is never wider
//! than asked ([`ConsentRequest::permits`]), or with a signed [`Denial`](super::denial).

use serde::{Deserialize, Serialize};

use crate::identity::{IdentityId, Ticket};
use crate::path::{FieldPath, RecordFilter};
use crate::scope::check_scope;
use crate::statement::{RequestId, Rule, Statement, check_single_line};

/// Longest duration a request may ask for: ten years, in seconds.
pub const MAX_REQUEST_DURATION: i64 = 10 * 366 * 86_400;
/// Longest self-declared requester name, in bytes.
pub const MAX_REQUESTER_NAME: usize = 64;

/// A request, signed by the requester, for access to some of the audience's fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// The request's id.
    pub id: RequestId,
    /// Who asks (and would receive).
    pub requester: IdentityId,
    /// Whose data is asked for: the one who decides.
    pub holder: IdentityId,
    /// What is asked for.
    pub fields: Vec<FieldPath>,
    /// Which purchase records, when not all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<RecordFilter>,
    /// Why (required).
    pub purpose: String,
    /// For how long, in seconds; none for as long as the holder allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    /// Whether purchase prices are asked for.
    pub prices: bool,
    /// Unix seconds.
    pub made_at: i64,
    /// The name the requester gives itself ("Acme Shop"): its own claim, shown as unverified
    /// beside its key until the holder names it as a contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The requester's ticket, as it gives it: the holder may add the requester as a contact
    /// from the request, without a ticket sent some other way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

impl Statement for ConsentRequest {
    const LABEL: &'static [u8] = b"vault/v1/consent-request";
    const KIND: &'static str = "consent request";

    fn made_at(&self) -> i64 {
        self.made_at
    }

    fn author(&self) -> IdentityId {
        self.requester
    }

    fn check(&self) -> Result<(), Rule> {
        check_scope("asks for", &self.fields, self.filter.as_ref(), &self.purpose, self.prices)?;
        if self.requester == self.holder {
            return Err(Rule::SameIdentity("requester and holder"));
        }
        if self.duration.is_some_and(|d| d <= 0 || d > MAX_REQUEST_DURATION) {
            return Err(Rule::DurationOutOfRange);
        }
        if let Some(name) = &self.name {
            check_requester_name(name)?;
        }
        // A ticket this vault cannot read (a later format) is ignored, not refused; one that
        // names another identity is.
        if let Some(Ok(ticket)) = self.reply_to.as_deref().map(str::parse::<Ticket>)
            && ticket.identity() != self.requester
        {
            return Err(Rule::NotTheirTicket);
        }
        Ok(())
    }
}

/// Checks a name a vault gives itself in its requests: not blank, trimmed, at most
/// [`MAX_REQUESTER_NAME`] bytes, one line with no steering characters, and none of the
/// invisible ones (zero-width, direction marks, a byte-order mark) or the quotes and brackets
/// around which a name could pass for a contact's line (`alice (KEY)`).
pub fn check_requester_name(name: &str) -> Result<(), Rule> {
    if name.trim().is_empty() {
        return Err(Rule::Empty { what: "name" });
    }
    if name.len() > MAX_REQUESTER_NAME {
        return Err(Rule::TooLong { what: "name", max: MAX_REQUESTER_NAME });
    }
    check_single_line("name", name)?;
    let unfit = |c: char| matches!(c, '"' | '(' | ')' | '[' | ']' | '\\' | '\u{200B}'..='\u{200F}' | '\u{061C}' | '\u{FEFF}' | '\u{2060}'..='\u{2064}');
    if let Some(c) = name.chars().find(|c| unfit(*c)) {
        return Err(Rule::UnfitCharacter { what: "name", code_point: u32::from(c) });
    }
    if name.trim() != name {
        return Err(Rule::Untrimmed { what: "name" });
    }
    Ok(())
}

/// How an answer would be wider than the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WiderThanAsked {
    /// A field the request does not cover.
    #[error("field \"{0}\" was not asked for")]
    Field(FieldPath),
    /// All records, where the request named a filter.
    #[error("the request asks only for {0}")]
    Filter(RecordFilter),
    /// Prices were not asked for.
    #[error("prices were not asked for")]
    Prices,
    /// Longer than asked.
    #[error("the request asks for {asked} days at most")]
    Duration {
        /// Days asked for.
        asked: i64,
    },
}

impl ConsentRequest {
    /// True when this asks for a purchase feed (every purchase field, possibly filtered).
    pub fn is_follow(&self) -> bool {
        self.fields == [FieldPath::Purchases(None)]
    }

    /// Checks that an answer is no wider than the request: every field within a requested
    /// one, the same filter when one was asked for, prices only if asked, and an expiry no
    /// later than the requested duration allows (from `now`).
    pub fn permits(
        &self,
        fields: &[FieldPath],
        filter: Option<&RecordFilter>,
        prices: bool,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<(), WiderThanAsked> {
        for field in fields {
            if !self.fields.iter().any(|asked| asked.covers(field)) {
                return Err(WiderThanAsked::Field(field.clone()));
            }
        }
        if let Some(asked) = &self.filter
            && filter != Some(asked)
        {
            return Err(WiderThanAsked::Filter(asked.clone()));
        }
        let touches_purchases = fields.iter().any(FieldPath::is_purchases);
        if prices && touches_purchases && !self.prices {
            return Err(WiderThanAsked::Prices);
        }
        if let Some(duration) = self.duration {
            let latest = now.saturating_add(duration);
            if expires_at.is_none_or(|e| e > latest) {
                return Err(WiderThanAsked::Duration { asked: (duration + 86_399) / 86_400 });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::statement::denial::Denial;
    use crate::statement::{Signed, StatementError};
    use proptest::prelude::*;

    fn request(shop: &Identity, alice: &Identity) -> ConsentRequest {
        ConsentRequest {
            id: RequestId::random(),
            requester: shop.public(),
            holder: alice.public(),
            fields: vec!["profile.email".parse().unwrap(), "profile.address".parse().unwrap()],
            filter: None,
            purpose: "delivery".into(),
            duration: Some(90 * 86_400),
            prices: false,
            made_at: 1_800_000_000,
            name: None,
            reply_to: None,
        }
    }

    #[test]
    fn requests_are_signed_by_the_requester() {
        let (shop, alice) = (Identity::generate(), Identity::generate());
        let signed = Signed::sign(request(&shop, &alice), &shop).unwrap();
        assert_eq!(Signed::<ConsentRequest>::from_bytes(&signed.to_bytes()).unwrap(), signed);
        // Nobody else can ask in the shop's name.
        assert!(Signed::sign(request(&shop, &alice), &alice).is_err());
        // A widened body no longer verifies.
        let body =
            String::from_utf8(signed.body().to_vec()).unwrap().replace("profile.email", "profile.phone");
        assert!(Signed::<ConsentRequest>::verify(body.as_bytes(), signed.signature()).is_err());
    }

    #[test]
    fn request_rules() {
        let (shop, alice) = (Identity::generate(), Identity::generate());
        let mut r = request(&shop, &alice);
        r.purpose = " ".into();
        assert!(Signed::sign(r, &shop).is_err(), "a purpose is required");
        let mut r = request(&shop, &alice);
        r.fields.clear();
        assert!(Signed::sign(r, &shop).is_err());
        let mut r = request(&shop, &alice);
        r.duration = Some(0);
        assert!(Signed::sign(r, &shop).is_err());
        let mut r = request(&shop, &alice);
        r.holder = shop.public();
        assert!(Signed::sign(r, &shop).is_err());
    }

    #[test]
    fn a_request_names_its_sender_only_in_its_own_words_and_with_its_own_ticket() {
        let (shop, alice) = (Identity::generate(), Identity::generate());
        let device = crate::identity::DeviceKey::generate();
        let ours = Ticket::new(shop.certify(device.public()), vec!["192.0.2.1:4433".parse().unwrap()]);
        let someone_else = Ticket::new(alice.certify(device.public()), Vec::new());
        let with = |name: Option<&str>, reply_to: Option<&Ticket>| ConsentRequest {
            name: name.map(Into::into),
            reply_to: reply_to.map(ToString::to_string),
            ..request(&shop, &alice)
        };
        let signed = Signed::sign(with(Some("Acme Shop"), Some(&ours)), &shop).unwrap();
        assert_eq!(Signed::<ConsentRequest>::from_bytes(&signed.to_bytes()).unwrap(), signed);
        // Another identity's ticket as the way back (a request that would make the holder add
        // a third party under the sender's request): refused when read, whoever signed it.
        let forged = encode_unchecked(&with(None, Some(&someone_else)), &shop);
        let err = Signed::<ConsentRequest>::from_bytes(&forged).unwrap_err().to_string();
        assert!(err.contains("the ticket it gives is not the requester's"), "{err}");
        // One it cannot read (a later format) is ignored when used, not refused.
        let later = ConsentRequest { reply_to: Some("vault2later".into()), ..request(&shop, &alice) };
        assert!(Signed::<ConsentRequest>::from_bytes(&encode_unchecked(&later, &shop)).is_ok());
        let posing = format!("alice ({})", alice.public());
        for name in [
            "",
            "  ",
            " Acme",
            "Acme\nFields: none",
            "\u{202e}pohS",
            "Ac\u{200b}me",
            "\"Acme\"",
            &posing,
            &"x".repeat(65),
        ] {
            let r = with(Some(name), None);
            assert!(Signed::<ConsentRequest>::from_bytes(&encode_unchecked(&r, &shop)).is_err(), "{name:?}");
        }
    }

    #[test]
    fn answers_are_never_wider_than_asked() {
        let (shop, alice) = (Identity::generate(), Identity::generate());
        let r = request(&shop, &alice);
        let now = r.made_at;
        let in_30_days = Some(now + 30 * 86_400);
        let email: FieldPath = "profile.email".parse().unwrap();
        let city: FieldPath = "profile.address.city".parse().unwrap();
        let phone: FieldPath = "profile.phone".parse().unwrap();
        // Narrower: fewer fields, a subtree of a requested one, a shorter time.
        assert_eq!(r.permits(&[email.clone(), city], None, false, in_30_days, now), Ok(()));
        assert_eq!(
            r.permits(&[email.clone(), phone.clone()], None, false, in_30_days, now),
            Err(WiderThanAsked::Field(phone))
        );
        assert_eq!(
            r.permits(std::slice::from_ref(&email), None, false, Some(now + 91 * 86_400), now),
            Err(WiderThanAsked::Duration { asked: 90 })
        );
        assert_eq!(
            r.permits(std::slice::from_ref(&email), None, false, None, now),
            Err(WiderThanAsked::Duration { asked: 90 }),
            "no expiry is longer than any duration"
        );
        let mut feed = request(&shop, &alice);
        feed.fields = vec![FieldPath::Purchases(None)];
        feed.filter = Some("tag=books".parse().unwrap());
        let all = [FieldPath::Purchases(None)];
        assert!(feed.is_follow());
        assert!(matches!(feed.permits(&all, None, false, in_30_days, now), Err(WiderThanAsked::Filter(_))));
        let books: RecordFilter = "tag=books".parse().unwrap();
        assert_eq!(feed.permits(&all, Some(&books), true, in_30_days, now), Err(WiderThanAsked::Prices));
        assert_eq!(feed.permits(&all, Some(&books), false, in_30_days, now), Ok(()));
    }

    /// Signs `statement` the way a hostile peer would: by hand, skipping the statement rules.
    fn encode_unchecked<T: Statement>(statement: &T, identity: &Identity) -> Vec<u8> {
        let body = serde_json::to_vec(statement).unwrap();
        let signature = identity.sign(T::LABEL, &body);
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&signature);
        out
    }

    #[test]
    fn control_characters_in_single_line_text_are_refused_at_decode() {
        let (shop, alice) = (Identity::generate(), Identity::generate());
        // The forged consent screen: a new line, a fake field list, and "hide what follows".
        let forged = "delivery\n  fields: profile.email\n\x1b[8m";
        for purpose in
            [forged, "a\rb", "tab\there", "x\u{7f}", "x\u{85}y", "\u{202e}gnidnes", "\u{2066}x", "a\u{2028}b"]
        {
            let mut r = request(&shop, &alice);
            r.purpose = purpose.into();
            let err = Signed::<ConsentRequest>::from_bytes(&encode_unchecked(&r, &shop)).unwrap_err();
            assert!(matches!(err, StatementError::Invalid { .. }), "{purpose:?}: {err}");
            // Signing says which character, and never echoes the text.
            let err = Signed::sign(r, &shop).unwrap_err().to_string();
            assert!(err.contains("the purpose contains a control character (U+"), "{err}");
            assert!(!err.contains(purpose), "{err}");
        }
        let first = Signed::sign(ConsentRequest { purpose: forged.into(), ..request(&shop, &alice) }, &shop);
        assert_eq!(
            first.unwrap_err().to_string(),
            "invalid consent request: the purpose contains a control character (U+000A)"
        );
        let mut r = request(&shop, &alice);
        r.fields = vec![FieldPath::Purchases(None)];
        r.filter = Some("tag=bo\x1bks".parse().unwrap());
        assert!(Signed::<ConsentRequest>::from_bytes(&encode_unchecked(&r, &shop)).is_err(), "filter value");
        // Printable text from any script stays allowed.
        let mut r = request(&shop, &alice);
        r.purpose = "livraison à domicile, 配達, доставка 📦".into();
        assert!(Signed::<ConsentRequest>::from_bytes(&encode_unchecked(&r, &shop)).is_ok());

        let denial = |reason: &str| Denial {
            request: RequestId::random(),
            holder: alice.public(),
            requester: shop.public(),
            reason: Some(reason.into()),
            denied_at: 1_800_000_000,
        };
        assert!(Signed::<Denial>::from_bytes(&encode_unchecked(&denial("no\n\x1b[2J"), &alice)).is_err());
        assert!(Signed::<Denial>::from_bytes(&encode_unchecked(&denial("not needed"), &alice)).is_ok());
        assert!(Signed::sign(denial("line one\nline two"), &alice).is_err());
    }

    #[test]
    fn request_ids_parse_and_print() {
        let id = RequestId::random();
        assert_eq!(id.to_string().parse::<RequestId>().unwrap(), id);
        assert!("not-an-id".parse::<RequestId>().is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Signed::<ConsentRequest>::from_bytes(&bytes);
            let _ = Signed::<Denial>::from_bytes(&bytes);
        }
    }
}
