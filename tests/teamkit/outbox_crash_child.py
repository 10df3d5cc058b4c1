"""Child process: commit an event to the outbox, then die by SIGKILL before any relay runs."""

import asyncio
import os
import signal
import sys

from teamkit import db, outbox
from tests.teamkit.messaging_fixtures import ping


async def main(url: str, n: int) -> None:
    engine = db.create_engine(url)
    sessionmaker = db.create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        event = await outbox.add(session, ping(n, subject="crash"))
    sys.stdout.write(f"{event.id}\n")
    sys.stdout.flush()
    # The commit is done; the process dies before anything publishes the row.
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
