//! The derivations: parsing, computing, typing, words and limits.

use serde_json::json;

use super::*;

fn date(s: &str) -> jiff::civil::Date {
    s.parse().unwrap()
}

#[test]
fn derivations_parse_and_print_back() {
    for d in ["over(18)", "year", "country", "prefix(2)", "band(10,50,100)", "over(150)", "band(1)"] {
        assert_eq!(Derivation::parse(d).unwrap().to_string(), d);
    }
    for loose in ["band(10, 50,100)", " over(18)", "over(018)", "year "] {
        assert!(matches!(Derivation::parse(loose), Err(DeriveError::Bad(_))), "{loose}: one form only");
    }
}

#[test]
fn bad_derivations_are_refused_with_the_rule() {
    assert_eq!(Derivation::parse("age"), Err(DeriveError::Unknown("age".into())));
    assert_eq!(Derivation::parse("over18"), Err(DeriveError::Unknown("over18".into())));
    for bad in [
        "over(0)",
        "over(151)",
        "over(+18)",
        "over(18,19)",
        "over(1.5)",
        "over()",
        "over",
        "over(18",
        "prefix(0)",
        "prefix(5)",
        "band()",
        "band(50,10)",
        "band(10,10)",
        "band(10,14)",
        "band(8,9,10)",
        "band(0,10)",
        "band(1,2,3,4,5,6,7,8,9)",
        "band(99999999999)",
        "year(2)",
        "country()",
    ] {
        assert!(matches!(Derivation::parse(bad), Err(DeriveError::Bad(_))), "{bad}");
    }
}

#[test]
fn over_counts_whole_years_on_the_issuers_date() {
    let over18 = Derivation::Over(18);
    let b = json!("2008-06-15");
    let at = |day: &str, hour: i8| {
        let utc = date(day).at(hour, 0, 0, 0).to_zoned(jiff::tz::TimeZone::UTC).unwrap();
        counting_day(utc.timestamp().as_second())
    };
    assert_eq!(over18.compute(&b, at("2026-06-15", 13)), Some(json!(false)), "not on the birthday");
    assert_eq!(over18.compute(&b, at("2026-06-30", 23)), Some(json!(false)), "nor later that month");
    assert_eq!(
        over18.compute(&b, at("2026-07-01", 11)),
        Some(json!(false)),
        "not while 1 July is not yet everywhere"
    );
    assert_eq!(
        over18.compute(&b, at("2026-07-01", 12)),
        Some(json!(true)),
        "from the first of the next month"
    );
    let first = json!("2008-06-01");
    assert_eq!(over18.compute(&first, at("2026-06-01", 12)), Some(json!(true)), "a birthday on the first");
    let leap = json!("2008-02-29");
    assert_eq!(over18.compute(&leap, at("2026-02-28", 13)), Some(json!(false)));
    assert_eq!(over18.compute(&leap, at("2026-03-01", 13)), Some(json!(true)));
    assert_eq!(over18.compute(&json!("2030-01-01"), date("2026-01-01")), Some(json!(false)), "future");
    assert_eq!(over18.compute(&json!("31/12/1990"), date("2026-01-01")), None, "unreadable: absent");
    assert_eq!(over18.compute(&Value::Null, date("2026-01-01")), None, "missing: absent");
    assert_eq!(Derivation::Year.compute(&b, date("2026-01-01")), Some(json!(2008)));
}

#[test]
fn country_prefix_and_band() {
    let today = date("2026-01-01");
    let address = json!({"street": "1 rue", "city": "Lyon", "postcode": "69001", "country": "FR"});
    assert_eq!(Derivation::Country.compute(&address, today), Some(json!("FR")));
    assert_eq!(Derivation::Country.compute(&json!({"city": "Lyon"}), today), None);
    assert_eq!(Derivation::Prefix(2).compute(&json!("69001"), today), Some(json!("69")));
    assert_eq!(Derivation::Prefix(2).compute(&json!("69"), today), None, "never the whole value");
    assert_eq!(Derivation::Prefix(2).compute(&json!("690"), today), None, "nor all but one character");
    assert_eq!(Derivation::Prefix(2).compute(&json!("6900"), today), Some(json!("69")));
    assert_eq!(Derivation::Prefix(1).compute(&json!("Ölm"), today), Some(json!("Ö")), "characters");
    assert_eq!(Derivation::Prefix(1).compute(&json!("Öl"), today), None);
    let band = Derivation::Band(vec![10, 50, 100]);
    let price = |amount: i64, currency: &str| json!({"amount_minor": amount, "currency": currency});
    assert_eq!(band.compute(&price(999, "EUR"), today), Some(json!("under 10 EUR")));
    assert_eq!(band.compute(&price(1000, "EUR"), today), Some(json!("10 to 50 EUR")));
    assert_eq!(band.compute(&price(4999, "EUR"), today), Some(json!("10 to 50 EUR")));
    assert_eq!(band.compute(&price(10_000, "EUR"), today), Some(json!("100 EUR or more")));
    assert_eq!(band.compute(&price(60, "JPY"), today), Some(json!("50 to 100 JPY")), "no minor unit");
    assert_eq!(band.compute(&price(i64::MAX, "KWD"), today), Some(json!("100 KWD or more")));
    assert_eq!(band.compute(&json!("12.50"), today), None);
}

#[test]
fn sources_are_typed_by_the_schema() {
    let p = |s: &str| s.parse::<FieldPath>().unwrap();
    let over = Derivation::Over(18);
    assert_eq!(over.check_source(&p("profile.birthday")), Ok(()));
    assert_eq!(over.check_source(&p("purchases.*.date")), Ok(()));
    assert_eq!(
        over.check_source(&p("profile.email")),
        Err(DeriveError::WrongType { needs: "a date", found: "text" })
    );
    assert_eq!(Derivation::Country.check_source(&p("profile.address")), Ok(()));
    assert_eq!(
        Derivation::Country.check_source(&p("profile")),
        Err(DeriveError::WrongType { needs: "an address", found: "a group of fields" })
    );
    assert_eq!(Derivation::Prefix(2).check_source(&p("profile.address.postcode")), Ok(()));
    assert_eq!(Derivation::Prefix(3).check_source(&p("profile.phone")), Ok(()));
    for not_a_code in ["preferences.diet", "profile.name", "profile.email", "purchases.*.seller"] {
        assert!(
            matches!(Derivation::Prefix(2).check_source(&p(not_a_code)), Err(DeriveError::Bad(_))),
            "{not_a_code}"
        );
    }
    assert!(Derivation::Prefix(2).check_source(&p("profile.birthday")).is_err(), "a date is not text");
    assert_eq!(Derivation::Band(vec![10]).check_source(&p("purchases.*.price")), Ok(()));
    assert_eq!(
        Derivation::Band(vec![10]).check_source(&p("purchases.*.rating")),
        Err(DeriveError::WrongType { needs: "a price", found: "a number" })
    );
    assert!(Derivation::Year.check_source(&p("purchases.*.tags")).is_err());
}

#[test]
fn plain_words_say_what_is_not_shared() {
    let p = |s: &str| s.parse::<FieldPath>().unwrap();
    assert_eq!(
        Derivation::Over(18).plain_words(&p("profile.birthday")),
        "whether you are 18 or older, counted by whole months (not your birthday; it turns true at the start of the month after your 18th birthday, and the recipient sees the month)"
    );
    assert_eq!(Derivation::Year.plain_words(&p("profile.birthday")), "your birth year (not the full date)");
    assert_eq!(Derivation::Country.plain_words(&p("profile.address")), "your country (not your address)");
    assert_eq!(
        Derivation::Prefix(2).plain_words(&p("profile.address.postcode")),
        "the first 2 characters of your postcode (not all of it)"
    );
    assert_eq!(
        Derivation::Band(vec![10, 50]).plain_words(&p("purchases.*.price")),
        "the price band of each purchase, in its currency: under 10, 10 to 50, 50 or more (not the exact price)"
    );
}

#[test]
fn ages_count_on_the_first_of_the_month_twelve_hours_behind_utc() {
    assert_eq!(counting_day(1_800_000_000), date("2027-01-01"), "2027-01-15 08:00 UTC");
    assert_eq!(
        counting_day(1_798_761_600),
        date("2026-12-01"),
        "2027-01-01 00:00 UTC: still December at UTC-12"
    );
    assert_eq!(counting_day(1_798_761_600 + 12 * 3600), date("2027-01-01"));
    assert_eq!(counting_day(i64::MAX), date("1970-01-01"), "out of range: no panic");
    assert_eq!(counting_day(i64::MIN), date("1970-01-01"));
}

#[test]
fn one_field_answers_few_questions() {
    let p = |list: &[&str]| list.iter().map(|s| s.parse::<FieldPath>().unwrap()).collect::<Vec<_>>();
    assert_eq!(too_revealing(&p(&["profile.birthday:over(18)", "profile.birthday:over(21)"])), None);
    assert_eq!(too_revealing(&p(&["profile.birthday:year", "profile.birthday:over(18)"])), None);
    let three = too_revealing(&p(&[
        "profile.birthday:year",
        "profile.birthday:over(18)",
        "profile.birthday:over(21)",
    ]));
    assert_eq!(three.map(|t| t.field), Some("profile.birthday".to_owned()));
    let again = p(&["profile.birthday:over(18)", "profile.birthday:over(18)", "profile.birthday:over(21)"]);
    assert_eq!(too_revealing(&again), None, "the same answer twice is one answer");
    let bands = p(&["purchases.*.price:band(10,50)", "purchases.*.price:band(20,100)"]);
    assert_eq!(too_revealing(&bands).map(|t| t.what), Some("more than one price band of one price"));
}
