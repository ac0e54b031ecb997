"""The engine end to end through the collecting fake channel, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from bot.channels.fake import FakeChannel
from bot.config import ChannelAudiences
from bot.messages import EventKind
from bot.runtime import Runtime, build_runtime
from bot.storage.models import ConversationState, MessageLog, Person, UnansweredQuestion


def values(replies: list) -> list[str]:
    return [c.value for r in replies for c in r.choices]


def texts(replies: list) -> str:
    return "\n".join(r.text for r in replies)


async def test_follow_gets_welcome_with_topic_menu(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    replies = await chan.follow()
    assert "小諸市" in texts(replies)
    assert {"topic:housing", "topic:childcare", "topic:telework"} <= set(values(replies))


async def test_question_gets_the_faq_answer_in_japanese(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    replies = await chan.press("faq:housing.akiya-bank")
    entry = runtime.engine.services.matcher.kb.get("housing.akiya-bank")
    assert entry is not None
    assert texts(replies) == entry.answer["ja"]


async def test_english_switch_then_topic_then_number(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    switched = await chan.say("English")
    assert "English" in texts(switched)
    topic = await chan.say("childcare")
    first = values(topic)[0]
    assert first.startswith("faq:childcare.")
    answer = await chan.say("1")  # typed number picks the first offered choice
    entry = runtime.engine.services.matcher.kb.get(first.split(":", 1)[1])
    assert entry is not None and texts(answer) == entry.answer["en"]


async def test_unknown_question_says_so_and_offers_a_person(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    replies = await chan.say("パスポートの申請方法")
    assert "お答えできる情報がありません" in texts(replies)
    assert "移住相談窓口" in texts(replies)
    async with runtime.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(UnansweredQuestion)) == 1


async def test_duplicate_event_id_gets_no_second_reply_or_state_change(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    first = await chan.say("English", event_id="evt-1")
    assert first
    again = await chan.say("English", event_id="evt-1")
    assert again == []
    async with runtime.sessions() as s:
        logged = await s.scalar(select(func.count()).select_from(MessageLog))
    assert logged == 2  # one in, one out: the duplicate left no trace


async def test_bad_input_gets_polite_reply_and_keeps_state(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    await chan.say("English")
    for text in [
        "",
        "   ",
        "\x00\x07\u202e",
        "😀🎉🙏",
        "a" * 10_000,
        "空き家" * 3000,
        "Привет مرحبا 你好",
    ]:
        replies = await chan.say(text)
        assert replies and all(r.text for r in replies)
    for kind in (EventKind.MEDIA, EventKind.POSTBACK):
        assert await chan.send(kind)
    async with runtime.sessions() as s:
        person = await s.scalar(select(Person))
    assert person is not None and person.language == "en" and person.language_chosen


async def test_empty_text_is_told_to_type(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    assert "空" in texts(await chan.say("  "))


async def test_sticker_gets_media_reply(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    assert "スタンプ" in texts(await chan.send(EventKind.MEDIA))


async def test_unfollow_marks_person_unreachable_silently(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    await chan.follow()
    assert await chan.send(EventKind.UNFOLLOW) == []
    async with runtime.sessions() as s:
        person = await s.scalar(select(Person))
    assert person is not None and person.reachable is False


async def test_cancel_clears_state(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    await chan.follow()
    replies = await chan.say("やめる")
    assert "取り消す手続きはありません" in texts(replies)


async def test_state_survives_a_restart(runtime: Runtime, settings, clock, faq_library) -> None:
    chan = FakeChannel(runtime.engine)
    await chan.say("English")
    await chan.say("housing")
    # A new process on the same database: a typed "2" still means the second choice.
    second = await build_runtime(settings, clock=clock, library=faq_library)
    try:
        replies = await FakeChannel(second.engine).say("2")
        entry = second.engine.services.matcher.kb.by_topic("housing")[1]
        assert replies[0].text == entry.answer["en"]
    finally:
        await second.aclose()


async def test_concurrent_events_for_one_person_both_count(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    await chan.follow()
    results = await asyncio.gather(*(chan.say(f"hello {n}") for n in range(6)))
    assert all(results)
    async with runtime.sessions() as s:
        row = await s.scalar(select(ConversationState))
        incoming = await s.scalar(
            select(func.count()).select_from(MessageLog).where(MessageLog.direction == "in")
        )
    assert incoming == 7
    # Every update bumped the version: none was silently overwritten.
    assert row is not None and row.version == 7


async def test_a_new_persons_first_messages_at_once_make_one_person(runtime: Runtime) -> None:
    # Nobody has written before: every event finds no person and no state at the same time.
    chan = FakeChannel(runtime.engine, user_id="newcomer")
    results = await asyncio.gather(*(chan.say(f"hello {n}") for n in range(5)))
    assert all(results)
    async with runtime.sessions() as s:
        newcomer = select(Person).where(Person.platform_user_id == "newcomer")
        people = (await s.scalars(newcomer)).all()
        state = await s.scalar(select(ConversationState))
        incoming = await s.scalar(
            select(func.count()).select_from(MessageLog).where(MessageLog.direction == "in")
        )
    assert len(people) == 1
    assert incoming == 5
    assert state is not None and state.version == 5


async def test_one_event_delivered_twice_at_once_is_answered_once(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    await chan.follow()
    results = await asyncio.gather(*(chan.say("English", event_id="evt-twice") for _ in range(2)))
    assert sorted(bool(r) for r in results) == [False, True]
    async with runtime.sessions() as s:
        said = await s.scalar(
            select(func.count())
            .select_from(MessageLog)
            .where(MessageLog.direction == "in", MessageLog.text == "English")
        )
    assert said == 1


async def test_two_people_are_independent(runtime: Runtime) -> None:
    alice = FakeChannel(runtime.engine, user_id="alice")
    bob = FakeChannel(runtime.engine, user_id="bob")
    await alice.say("English")
    replies = await bob.say("メニュー")
    assert "知りたいこと" in texts(replies)


async def test_a_new_persons_audience_comes_from_the_channel_setting(
    settings, clock, faq_library
) -> None:
    # This city invites companies on LINE too: its operator says so in config.toml.
    audiences = ChannelAudiences(line="company", telegram="company")
    custom = settings.model_copy(
        update={"bot": settings.bot.model_copy(update={"audience": audiences})}
    )
    rt = await build_runtime(custom, clock=clock, migrate_schema=True, library=faq_library)
    try:
        for channel, user in (("line", "U1"), ("web", "W1"), ("telegram", "T1")):
            await FakeChannel(rt.engine, user_id=user, channel=channel).follow()
        async with rt.sessions() as s:
            rows = (await s.execute(select(Person.channel, Person.audience))).all()
        found = {row.channel: row.audience for row in rows}
        assert found == {"line": "company", "web": "resident", "telegram": "company"}
    finally:
        await rt.aclose()


async def test_dont_know_lists_the_closest_entries_when_they_are_near(runtime: Runtime) -> None:
    """Below the 「もしかして」 band the right entry is still often among the closest three:
    the "don't know" lists them as buttons (above a floor) instead of the topic menu."""
    from faq.matcher import Band
    from intents.fallback import NEARBY_FLOOR

    matcher = runtime.engine.services.matcher
    candidates = (
        "Is there any financial help if I move here?",
        "雪かきの道具はどこで買えますか",
        "How much money do I need to live here?",
        "駅前の駐車場は有料ですか",
    )
    near = [
        q
        for q in candidates
        if (r := matcher.match(q)).band is Band.UNKNOWN and r.confidence >= NEARBY_FLOOR
    ]
    assert near, "no candidate lands between the floor and the suggest band: update the list"
    chan = FakeChannel(runtime.engine)
    replies = await chan.say(near[0])
    said = texts(replies)
    assert "お答えできる情報がありません" in said or "I don't have information" in said
    top = [m.entry.id for m in matcher.match(near[0]).matches[:3]]
    assert [v for v in values(replies) if v.startswith("faq:")] == [f"faq:{i}" for i in top]
