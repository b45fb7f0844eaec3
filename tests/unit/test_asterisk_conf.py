"""The Asterisk configuration as the engine renders it for an instance (no Asterisk needed).

pyst2's config parser reads plain `name = value` files soundly (not #include, templates or `=>`),
which is exactly what the AMI users file is: it pins the engine's least-privilege AMI user.
"""

from __future__ import annotations

import asterisk.config

from callcenter.asterisk.process import AsteriskInstance
from callcenter.config import Settings

FORBIDDEN_CLASSES = {"system", "command", "config", "all", "dialplan", "originate_system"}


def rendered(tmp_path, **overrides) -> AsteriskInstance:
    instance = AsteriskInstance(Settings(asterisk_root=tmp_path, asterisk_instance="render", **overrides))
    instance.render()
    return instance


def test_ami_user_is_least_privilege_and_filters_events(tmp_path):
    instance = rendered(tmp_path, ami_user="ccengine", ami_secret="s3cret-value")
    conf = asterisk.config.Config(str(instance.etc_dir / "manager_users.conf"))
    assert [c.name for c in conf.categories] == ["ccengine"]
    items = [(i.name.strip(), i.value.strip()) for i in conf.categories[0].items]
    values = dict(items)
    assert values["secret"] == "s3cret-value"
    assert set(values["read"].split(",")) == {"call", "user", "system"}  # system: FullyBooted only (filtered)
    assert set(values["write"].split(",")) == {"originate", "call", "reporting"}  # reporting: CoreShowChannels
    # reading the system class is harmless here: the include filters let only FullyBooted through
    assert not FORBIDDEN_CLASSES & set(values["write"].split(","))
    assert not (FORBIDDEN_CLASSES - {"system"}) & set(values["read"].split(","))
    assert values["deny"] == "0.0.0.0/0.0.0.0" and values["permit"] == "127.0.0.1/255.255.255.255"
    filters = sorted(name for name, _ in items if name.startswith("eventfilter"))
    assert filters == [f"eventfilter(action(include),name({e}))"
                       for e in sorted(["BridgeEnter", "ChanSpyStart", "DeviceStateChange", "FullyBooted", "Hangup",
                                        "HangupRequest", "OriginateResponse", "UserEvent"])]


def test_agents_phones_are_checked_only_when_phone_qualify_seconds_is_set(tmp_path):
    plain = (rendered(tmp_path / "a").etc_dir / "pjsip_agents.conf").read_text()
    assert "qualify" not in plain
    checked = (rendered(tmp_path / "b", phone_qualify_seconds=2).etc_dir / "pjsip_agents.conf").read_text()
    aor = checked.split("[agent1001]\n")[1].split("\n\n")[0]
    assert "type = aor" in aor and "qualify_frequency = 2" in aor and "qualify_timeout = 1.6" in aor


def test_agent_contacts_and_fallback_members_come_from_the_settings(tmp_path):
    instance = rendered(tmp_path, agents={"1001": "sip:agent1001@127.0.0.1:6001", "2002": "sip:desk@192.0.2.10"})
    agents = (instance.etc_dir / "pjsip_agents.conf").read_text()
    assert "[agent1001](agent-endpoint)" in agents and "contact = sip:agent1001@127.0.0.1:6001" in agents
    assert "[agent2002](agent-endpoint)" in agents and "contact = sip:desk@192.0.2.10" in agents
    assert "agent1002" not in agents
    members = (instance.etc_dir / "queues_fallback_members.conf").read_text()
    assert [l for l in members.splitlines() if l.startswith("member")] == [
        "member => PJSIP/agent1001", "member => PJSIP/agent2002"]
    globals_ = (instance.etc_dir / "cc_globals.conf").read_text()
    assert "CC_AGI_URL = agi://127.0.0.1:4573" in globals_ and "CC_MAX_HOLD = 1800" in globals_
    asterisk_conf = (instance.etc_dir / "asterisk.conf").read_text()
    assert "astetcdir => /var/lib/callcenter/render/etc" in asterisk_conf
    assert "[directories]\n" in asterisk_conf, "[directories] must not be a template"
