use super::*;
use crate::model::{PrincipalKind, PrincipalStatus, ResourceRef};
use serde_json::json;

fn principal(id: &str, kind: PrincipalKind) -> Principal {
    Principal {
        id: id.to_owned(),
        kind,
        status: PrincipalStatus::Active,
        display_name: String::new(),
        created_at: 0,
        invitation_expires_at: Default::default(),
    }
}

fn node(attrs: &[(&str, &str)]) -> ResourceNode {
    let a: Attributes = attrs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ResourceNode {
        links: Default::default(),
        resource: ResourceRef {
            rtype: "alert_settings".into(),
            id: "s1".into(),
        },
        private: false,
        attributes: (!a.is_empty()).then(|| Arc::new(a)),
        restricted: Default::default(),
    }
}

fn ctx(v: serde_json::Value) -> RequestContext {
    let typed = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    RequestContext::new([], typed).unwrap()
}

/// 2026-12-03T10:30:00Z, a Thursday.
const THURSDAY_1030_UTC: Millis = 1_796_293_800_000;

fn eval(
    src: &str,
    request: &RequestContext,
    who: &Principal,
    res: Option<&ResourceNode>,
) -> Outcome {
    let c = Condition::compile("condition", src).unwrap();
    c.evaluate(&Facts {
        request,
        subject: who,
        resource: res,
        now: THURSDAY_1030_UTC,
    })
}

#[test]
fn mfa_for_administrators_holds_only_with_mfa_and_names_it_when_missing() {
    let alice = principal("alice", PrincipalKind::User);
    let src = "request.mfa == true";
    assert_eq!(
        eval(src, &ctx(json!({"mfa": true})), &alice, None),
        Outcome::Holds
    );
    assert_eq!(
        eval(src, &ctx(json!({"mfa": false})), &alice, None),
        Outcome::Fails
    );
    assert_eq!(
        eval(src, &RequestContext::default(), &alice, None),
        Outcome::Missing(vec!["mfa".into()])
    );
    // A string "true" is not the bool true: CEL does not coerce (no allow
    // by accident of a type).
    let strings =
        RequestContext::new([("mfa".to_owned(), "true".to_owned())], BTreeMap::new()).unwrap();
    assert_ne!(eval(src, &strings, &alice, None), Outcome::Holds);
}

#[test]
fn self_only_settings_hold_for_their_user_alone() {
    let src = "resource.user == subject.id";
    let mine = node(&[("user", "alice")]);
    let none = RequestContext::default();
    let alice = principal("alice", PrincipalKind::User);
    let owner = principal("olga", PrincipalKind::User);
    assert_eq!(eval(src, &none, &alice, Some(&mine)), Outcome::Holds);
    assert_eq!(eval(src, &none, &owner, Some(&mine)), Outcome::Fails);
    // A resource without the attribute: an error, never an allow, and not
    // a context the caller could add.
    assert!(matches!(
        eval(src, &none, &alice, Some(&node(&[]))),
        Outcome::Error(_)
    ));
}

#[test]
fn office_hours_and_ip_ranges_are_expressible() {
    let alice = principal("alice", PrincipalKind::User);
    let none = RequestContext::default();
    let hours = "now.getHours('Europe/Berlin') >= 9 && now.getHours('Europe/Berlin') < 17 && now.getDayOfWeek() >= 1 && now.getDayOfWeek() <= 5";
    // 10:30 UTC is 11:30 in Berlin on a Thursday.
    assert_eq!(eval(hours, &none, &alice, None), Outcome::Holds);
    let late = "now.getHours('America/Los_Angeles') >= 9";
    // 02:30 in Los Angeles.
    assert_eq!(eval(late, &none, &alice, None), Outcome::Fails);

    let office = "inCidr(request.ip, '10.0.0.0/8') || inCidr(request.ip, '2001:db8::/32')";
    assert_eq!(
        eval(office, &ctx(json!({"ip": "10.1.2.3"})), &alice, None),
        Outcome::Holds
    );
    assert_eq!(
        eval(office, &ctx(json!({"ip": "2001:db8::7"})), &alice, None),
        Outcome::Holds
    );
    assert_eq!(
        eval(office, &ctx(json!({"ip": "192.168.0.1"})), &alice, None),
        Outcome::Fails
    );
    assert_eq!(
        eval(office, &none, &alice, None),
        Outcome::Missing(vec!["ip".into()])
    );
    assert!(matches!(
        eval(office, &ctx(json!({"ip": "not an ip"})), &alice, None),
        Outcome::Error(_)
    ));
}

#[test]
fn subject_kind_and_typed_values_are_read() {
    let bot = principal("ci", PrincipalKind::ServiceAccount);
    let none = RequestContext::default();
    assert_eq!(
        eval("subject.kind == 'service_account'", &none, &bot, None),
        Outcome::Holds
    );
    let c = ctx(json!({"level": 3, "teams": ["a", "b"], "geo": {"country": "DE"}}));
    assert_eq!(
        eval(
            "request.level >= 2 && 'b' in request.teams && request.geo.country == 'DE'",
            &c,
            &bot,
            None
        ),
        Outcome::Holds
    );
    assert_eq!(
        eval("request.teams.exists(t, t == 'c')", &c, &bot, None),
        Outcome::Fails
    );
    // `has` lets a condition treat a missing field itself.
    assert_eq!(
        eval("!has(request.mfa) || request.mfa", &none, &bot, None),
        Outcome::Holds
    );
}

#[test]
fn written_conditions_are_checked_and_errors_name_the_field() {
    for (src, why) in [
        ("", "must not be empty"),
        ("request.mfa ==", "not a CEL expression"),
        ("user.id == 'x'", "unknown name `user`"),
        ("system('rm')", "unknown function `system`"),
        ("request.mfa.matches('x')", "unknown function `matches`"),
        ("1 + 2", "not a bool"),
        ("subject.id > 5", "type error"),
        ("'a' + 1 == 'a1'", "type error"),
        (
            "request.l.all(x, request.l.all(y, request.l.all(z, true)))",
            "at most 2 macros",
        ),
    ] {
        let e = Condition::compile("grant.condition", src).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("grant.condition"), "{src}: {text}");
        assert!(text.contains(why), "{src}: {text}");
    }
    let long = format!("request.a == '{}'", "x".repeat(MAX_CONDITION_BYTES));
    assert!(Condition::compile("c", &long).is_err());
    let wide = vec!["request.a==1"; 70].join("||");
    assert!(Condition::compile("c", &wide)
        .unwrap_err()
        .to_string()
        .contains("too large"));
    // Well-formed ones compile, and name the request fields they read.
    let c = Condition::compile(
        "c",
        "request.mfa == true && request['ip'] != '' && resource.user == subject.id",
    )
    .unwrap();
    assert_eq!(c.request_fields(), ["ip".to_owned(), "mfa".to_owned()]);
}

#[test]
fn a_condition_round_trips_as_its_source() {
    let c = Condition::compile("c", "  request.mfa == true ").unwrap();
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(json, "\"request.mfa == true\"");
    let back: Condition = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    assert!(serde_json::from_str::<Condition>("\"nope(\"").is_err());
}

#[test]
fn contexts_are_bounded() {
    let many: BTreeMap<String, serde_json::Value> =
        (0..65).map(|i| (format!("k{i}"), json!(1))).collect();
    assert!(RequestContext::new([], many).is_err());
    let deep = json!({"a": {"b": {"c": {"d": {"e": 1}}}}});
    assert!(RequestContext::new([], [("x".to_owned(), deep)].into()).is_err());
    let wide = json!((0..300).collect::<Vec<_>>());
    assert!(RequestContext::new([], [("x".to_owned(), wide)].into()).is_err());
    let both = RequestContext::new(
        [("mfa".to_owned(), "true".to_owned())],
        [("mfa".to_owned(), json!(true))].into(),
    );
    assert!(both.unwrap_err().to_string().contains("typed_context"));
}

#[test]
fn cidr_ranges_match_by_prefix() {
    assert_eq!(cidr_contains("10.0.0.0/8", "10.255.0.1"), Ok(true));
    assert_eq!(cidr_contains("10.0.0.0/8", "11.0.0.1"), Ok(false));
    assert_eq!(cidr_contains("0.0.0.0/0", "1.2.3.4"), Ok(true));
    assert_eq!(cidr_contains("192.168.1.7/32", "192.168.1.7"), Ok(true));
    assert_eq!(cidr_contains("10.0.0.0/8", "::1"), Ok(false));
    assert!(cidr_contains("10.0.0.0/33", "10.0.0.1").is_err());
    assert!(cidr_contains("10.0.0.0", "10.0.0.1").is_err());
}

#[test]
fn attributes_are_validated() {
    let ok: Attributes = [("user".to_owned(), "alice".to_owned())].into();
    assert!(validate_attributes("attributes", &ok).is_ok());
    for bad in [
        [("id".to_owned(), "x".to_owned())].into(),
        [("Bad Name".to_owned(), "x".to_owned())].into(),
        [("user".to_owned(), "x".repeat(300))].into(),
    ] {
        assert!(validate_attributes("attributes", &bad).is_err());
    }
    let many: Attributes = (0..17).map(|i| (format!("a{i}"), String::new())).collect();
    assert!(validate_attributes("attributes", &many).is_err());
}
