//! The embedded playbooks parse, every module argument is valid, every
//! notified handler exists, and every template-bearing argument renders.

#[test]
fn site_playbook_loads() {
    let p = ocfo::engine::playbook::load_site().expect("embedded playbooks are valid");
    assert!(p.tasks.len() > 10);
    let tags = ocfo::engine::playbook::all_tags(&p);
    for t in [
        "harden",
        "node",
        "openclaw",
        "workspace",
        "monitor",
        "firewall",
        "ssh",
    ] {
        assert!(tags.iter().any(|x| x == t), "tag {t} missing: {tags:?}");
    }
}
