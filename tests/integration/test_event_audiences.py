"""Who hears of a conversation (``hub.store.events.audiences``), on both engines: its participants who have not
left, and the agent it is offered to; one statement, read in the transaction of every change consoles hear of."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from hub.model import ConversationState, Role
from hub.store import Store, store_group
from hub.store.agents import create_agent
from hub.store.events import audiences
from hub.store.tables import conversations, participants
from tests.integration.test_ingest import ACCOUNTS, T0, make_message


async def test_participants_who_stayed_and_the_agent_offered_to_hear_of_a_conversation(store: Store) -> None:
    results = await store_group(
        store, [[make_message(n, sender_id=f"42060000000{n}")] for n in (1, 2, 3)], ACCOUNTS, T0
    )
    first, second, third = (
        next(e.conversation_id for e in r.events) for r in results if not isinstance(r, BaseException)
    )
    anna, bert, cleo = [
        (await create_agent(store, login=login, password="long enough", role=Role.AGENT, now=T0)).id
        for login in ("anna", "bert", "cleo")
    ]
    later = T0 + timedelta(minutes=5)
    async with store.write() as connection:
        await connection.execute(
            participants.insert(),
            [
                {"conversation_id": first, "agent_id": anna, "role": "owner", "joined_at": T0, "left_at": None},
                {"conversation_id": first, "agent_id": bert, "role": "invited", "joined_at": T0, "left_at": None},
                {"conversation_id": first, "agent_id": cleo, "role": "invited", "joined_at": T0, "left_at": later},
            ],
        )
        await connection.execute(
            update(conversations)
            .where(conversations.c.id == second)
            .values(state=ConversationState.OFFERED.value, offered_agent_id=cleo)
        )
    async with store.read() as connection:
        heard = await audiences(connection, [third, first, second, first])
    assert heard == {first: sorted([anna, bert]), second: [cleo], third: []}
