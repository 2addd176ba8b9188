use super::*;

fn spec(yaml: &str) -> RequiredBuildSpec {
    let text = format!(
        "apiVersion: bitbucket.integrations.dev/v1alpha1\nkind: RequiredBuild\nmetadata: {{name: r}}\nspec:\n  bindingRef: {{name: b}}\n{yaml}"
    );
    let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let validator = crate::api::validation::validator_for("bitbucket.integrations.dev/v1alpha1", "RequiredBuild");
    let admitted =
        validator.unwrap_or_else(|| panic!("no validator")).admit(&value, None).unwrap_or_else(|e| panic!("{e:?}"));
    let build: crate::api::RequiredBuild = serde_json::from_value(admitted).unwrap_or_else(|e| panic!("{e}"));
    build.spec
}

fn content(keys: &[&str], ref_matcher: RefMatcher, exempt: Option<RefMatcher>) -> Content {
    Content { build_keys: keys.iter().map(|k| (*k).to_owned()).collect(), ref_matcher, exempt }
}

fn on_main(keys: &[&str]) -> Content {
    content(keys, branch("main"), None)
}

fn condition(id: i64, content: Content) -> Condition {
    Condition { id, content }
}

fn manage(desired: &Content, applied: Option<&Content>, observed: &[Condition]) -> Decision {
    decide(desired, applied.map(std::slice::from_ref).unwrap_or_default(), observed, ManagementPolicy::Manage)
}

#[test]
fn without_a_ref_matcher_the_condition_applies_to_the_default_branch() {
    let spec = spec("  buildParentKeys: [sonarqube-quality-gate]\n");
    let wanted = desired(&spec, "refs/heads/develop").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wanted.ref_matcher.kind.as_str(), "BRANCH");
    assert_eq!(wanted.ref_matcher.id, "refs/heads/develop");
    assert_eq!(wanted.exempt, None);
    // A default branch given by name is the same ref.
    let by_name = desired(&spec, "develop").unwrap_or_else(|e| panic!("{e}"));
    assert!(by_name.same_as(&wanted));
    assert!(!desired(&spec, "main").unwrap_or_else(|e| panic!("{e}")).same_as(&wanted));
}

#[test]
fn each_spec_matcher_becomes_its_bitbucket_matcher() {
    let cases = [
        ("{type: Branch, value: main}", "BRANCH", "refs/heads/main"),
        ("{type: Branch, value: refs/heads/release}", "BRANCH", "refs/heads/release"),
        ("{type: Pattern, value: \"release/*\"}", "PATTERN", "release/*"),
        ("{type: ModelCategory, value: FEATURE}", "MODEL_CATEGORY", "FEATURE"),
        ("{type: ModelBranch, value: production}", "MODEL_BRANCH", "production"),
        ("{type: AnyRef}", "ANY_REF", ANY_REF_ID),
    ];
    for (matcher, type_id, id) in cases {
        let spec = spec(&format!(
            "  buildParentKeys: [ci]\n  refMatcher: {matcher}\n  exemptRefMatcher: {{type: ModelCategory, value: HOTFIX}}\n"
        ));
        let wanted = desired(&spec, "refs/heads/trunk").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((wanted.ref_matcher.kind.as_str(), wanted.ref_matcher.id.as_str()), (type_id, id), "{matcher}");
        let exempt = wanted.exempt.unwrap_or_else(|| panic!("{matcher}: no exempt matcher"));
        assert_eq!((exempt.kind.as_str(), exempt.id.as_str()), ("MODEL_CATEGORY", "HOTFIX"));
    }
}

#[test]
fn a_matcher_without_a_value_is_an_error_naming_the_field() {
    let mut spec = spec("  buildParentKeys: [ci]\n");
    spec.exempt_ref_matcher = Some(SpecMatcher { type_: SpecType::Pattern, value: None });
    let error = desired(&spec, "main").err().unwrap_or_else(|| panic!("a matcher without a value was accepted"));
    assert!(error.to_string().starts_with("exemptRefMatcher.value is required"), "{error}");
    spec.exempt_ref_matcher = None;
    spec.build_parent_keys.clear();
    let error = desired(&spec, "main").err().unwrap_or_else(|| panic!("no build keys was accepted"));
    assert!(error.to_string().contains("buildParentKeys"), "{error}");
}

#[test]
fn content_compares_key_sets_full_refs_and_exemptions() {
    let wanted = content(&["ci", "sonar"], branch("main"), None);
    assert!(content(&["sonar", "ci", "ci"], branch("refs/heads/main"), None).same_as(&wanted));
    assert!(!content(&["ci"], branch("main"), None).same_as(&wanted), "a missing key");
    assert!(!content(&["ci", "sonar", "lint"], branch("main"), None).same_as(&wanted), "an extra key");
    assert!(!content(&["ci", "sonar"], branch("master"), None).same_as(&wanted), "another branch");
    let pattern = RefMatcher { id: "main".into(), kind: WireType::Pattern };
    assert!(!content(&["ci", "sonar"], pattern, None).same_as(&wanted), "a pattern is not a branch");
    let hotfix = RefMatcher { id: "HOTFIX".into(), kind: WireType::ModelCategory };
    assert!(!content(&["ci", "sonar"], branch("main"), Some(hotfix)).same_as(&wanted), "an exemption");
    let any = |id: &str| content(&["ci"], RefMatcher { id: id.into(), kind: WireType::AnyRef }, None);
    assert!(any(ANY_REF_ID).same_as(&any("any")), "every AnyRef matcher selects the same refs");
}

#[test]
fn a_repository_with_the_desired_condition_is_in_sync() {
    let wanted = on_main(&["ci"]);
    let observed = [condition(4, on_main(&["lint"])), condition(7, on_main(&["ci"]))];
    let decision = manage(&wanted, Some(&wanted), &observed);
    assert!(decision.in_sync());
    assert_eq!(decision.actions, []);
}

#[test]
fn an_identical_condition_made_by_hand_is_adopted_not_created_again() {
    // Also what a round finds after a crash between the create and the status write.
    let wanted = on_main(&["sonarqube-quality-gate"]);
    let observed = [condition(12, on_main(&["sonarqube-quality-gate"]))];
    let decision = manage(&wanted, None, &observed);
    assert!(decision.in_sync(), "{decision:?}");
    assert!(decision.actions.is_empty(), "{decision:?}");
}

#[test]
fn a_spec_change_updates_our_condition_in_place() {
    let before = on_main(&["ci"]);
    let after = on_main(&["ci", "sonarqube-quality-gate"]);
    let observed = [condition(3, on_main(&["lint"])), condition(9, before.clone())];
    let decision = manage(&after, Some(&before), &observed);
    assert_eq!(decision.drift, [Drift::Outdated { id: 9 }]);
    assert_eq!(decision.actions, [Action::Update { id: 9, content: after.clone() }]);
}

#[test]
fn an_update_already_made_before_a_crash_is_not_repeated() {
    let before = on_main(&["ci"]);
    let after = on_main(&["ci", "sonarqube-quality-gate"]);
    let decision = manage(&after, Some(&before), &[condition(9, after.clone())]);
    assert!(decision.in_sync(), "{decision:?}");
    assert!(decision.actions.is_empty());
}

#[test]
fn without_a_condition_of_ours_one_is_created_and_others_are_left_alone() {
    let wanted = on_main(&["ci"]);
    let applied = on_main(&["old-ci"]);
    let others = [
        condition(1, on_main(&["lint"])),
        condition(2, content(&["ci"], branch("develop"), None)),
        condition(3, content(&["ci"], branch("main"), Some(branch("main")))),
    ];
    let decision = manage(&wanted, Some(&applied), &others);
    assert_eq!(decision.drift, [Drift::Missing]);
    assert_eq!(decision.actions, [Action::Create(wanted.clone())]);
}

#[test]
fn observe_reports_drift_and_changes_nothing() {
    let before = on_main(&["ci"]);
    let after = on_main(&["sonarqube-quality-gate"]);
    let cases: [(Option<&Content>, Vec<Condition>, Drift); 3] = [
        (None, vec![], Drift::Missing),
        (Some(&before), vec![condition(5, before.clone())], Drift::Outdated { id: 5 }),
        (Some(&after), vec![condition(5, after.clone()), condition(6, after.clone())], Drift::Extra { ids: vec![6] }),
    ];
    for (applied, observed, drift) in cases {
        let applied = applied.map(std::slice::from_ref).unwrap_or_default();
        let decision = decide(&after, applied, &observed, ManagementPolicy::Observe);
        assert_eq!(decision.drift, std::slice::from_ref(&drift));
        assert!(!decision.in_sync());
        assert!(decision.actions.is_empty(), "{drift:?}: {decision:?}");
        let managed = decide(&after, applied, &observed, ManagementPolicy::Manage);
        assert!(!managed.actions.is_empty(), "{drift:?}: Manage would correct it");
    }
}

#[test]
fn duplicates_of_ours_keep_the_oldest_and_delete_the_rest() {
    let wanted = on_main(&["ci"]);
    let observed = [
        condition(21, wanted.clone()),
        condition(8, wanted.clone()),
        condition(2, on_main(&["lint"])),
        condition(13, on_main(&["ci", "ci"])),
    ];
    let decision = manage(&wanted, Some(&wanted), &observed);
    assert_eq!(decision.drift, [Drift::Extra { ids: vec![13, 21] }]);
    assert_eq!(decision.actions, [Action::Delete { id: 13 }, Action::Delete { id: 21 }]);
}

#[test]
fn duplicates_of_the_applied_content_are_updated_once_and_the_rest_deleted() {
    let before = on_main(&["ci"]);
    let after = on_main(&["sonarqube-quality-gate"]);
    let observed = [condition(30, before.clone()), condition(10, before.clone())];
    let decision = manage(&after, Some(&before), &observed);
    assert_eq!(decision.actions, [Action::Update { id: 10, content: after.clone() }, Action::Delete { id: 30 }]);
}

#[test]
fn an_old_condition_of_ours_beside_an_adopted_one_is_deleted() {
    let before = on_main(&["ci"]);
    let after = on_main(&["sonarqube-quality-gate"]);
    let observed = [condition(4, before.clone()), condition(6, after.clone()), condition(7, on_main(&["lint"]))];
    let decision = manage(&after, Some(&before), &observed);
    assert_eq!(decision.drift, [Drift::Extra { ids: vec![4] }]);
    assert_eq!(decision.actions, [Action::Delete { id: 4 }]);
}

#[test]
fn removal_deletes_only_conditions_with_our_content() {
    let before = on_main(&["ci"]);
    let after = on_main(&["sonarqube-quality-gate"]);
    let observed = [
        condition(9, after.clone()),
        condition(1, before.clone()),
        condition(5, on_main(&["lint"])),
        condition(6, content(&["sonarqube-quality-gate"], branch("develop"), None)),
        condition(2, after.clone()),
    ];
    assert_eq!(removals(&after, std::slice::from_ref(&before), &observed), [1, 2, 9]);
    assert_eq!(removals(&after, &[], &observed), [2, 9]);
    assert_eq!(removals(&after, &[], &observed[2..4]), Vec::<i64>::new());
}

#[test]
fn only_delete_policy_in_manage_mode_removes_conditions() {
    let cases = [("Delete", "Manage", true), ("Orphan", "Manage", false), ("Delete", "Observe", false)];
    for (deletion, management, removes) in cases {
        let spec =
            spec(&format!("  buildParentKeys: [ci]\n  deletionPolicy: {deletion}\n  managementPolicy: {management}\n"));
        assert_eq!(removes_conditions(&spec), removes, "{deletion}, {management}");
    }
    assert!(removes_conditions(&spec("  buildParentKeys: [ci]\n")), "the defaults remove them");
}

#[test]
fn the_applied_record_resolves_like_the_spec() {
    let spec = spec("  buildParentKeys: [ci, sonar]\n  exemptRefMatcher: {type: Pattern, value: \"wip/*\"}\n");
    let record = AppliedBuild::from(&spec);
    let from_record = applied(&record, "main").unwrap_or_else(|e| panic!("{e}"));
    let from_spec = desired(&spec, "main").unwrap_or_else(|e| panic!("{e}"));
    assert!(from_record.same_as(&from_spec));
    let round_trip: AppliedBuild =
        serde_json::from_value(serde_json::to_value(&record).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(round_trip, record);
}

#[test]
fn every_content_applied_before_is_still_ours_after_two_spec_changes() {
    // S1 was everywhere; S2 reached some repositories only; the spec is now S3.
    let (s1, s2, s3) = (on_main(&["ci"]), on_main(&["ci", "lint"]), on_main(&["ci", "lint", "gate"]));
    let applied = [s2.clone(), s1.clone()];
    let on_s2 = [condition(4, s2.clone()), condition(5, on_main(&["other"]))];
    let decision = decide(&s3, &applied, &on_s2, ManagementPolicy::Manage);
    assert_eq!(decision.actions, [Action::Update { id: 4, content: s3.clone() }]);
    let on_s1 = [condition(2, s1.clone())];
    assert_eq!(
        decide(&s3, &applied, &on_s1, ManagementPolicy::Manage).actions,
        [Action::Update { id: 2, content: s3.clone() }]
    );
    let both = [condition(2, s1), condition(4, s2), condition(5, on_main(&["other"]))];
    assert_eq!(removals(&s3, &applied, &both), [2, 4]);
}
