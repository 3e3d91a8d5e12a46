"""`smsbridge contacts import|export`: vCard 3/4 and CSV, bad rows by line number, the round
trip, and a running bridge retitling the topic of a number whose name was imported."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cliops import ALICE, BOB, cli, posted, sqlite_bridge
from conftest import GROUP, config_dict

from bridge.config import load_config
from bridge.store.sql import SqlStore
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

CAROL = "+15551230003"

VCARD3 = """\
BEGIN:VCARD
VERSION:3.0
FN:Alice Smith
N:Smith;Alice;;;
item1.TEL;type=CELL:+1 555 123 0001
END:VCARD
BEGIN:VCARD
VERSION:3.0
N:Jones;Bob;;;
TEL;TYPE=WORK:(555) 123-0002
TEL;TYPE=HOME:12
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:Nobody
END:VCARD
"""

VCARD4 = """\
BEGIN:VCARD
VERSION:4.0
FN:Carol Chen
TEL;VALUE=uri;TYPE=cell:tel:+1-555-123-0003
TEL;VALUE=uri;TYPE=work:tel:+1-555-123-0001;ext=7
END:VCARD
BEGIN:VCARD
VERSION:4.0
FN:Broken
TEL;VALUE=uri:tel:not-a-number
END:VCARD
"""

CSV = """\
name,number,notes
Alice Smith,+15551230001,first
Bob Jones,(555) 123-0002,
,+15551230003,no name
Dan,0470,too short
"Eve, Esq.",+1 555 123 0005
only one column
"""


def write_config(folder: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram) -> Path:
    """A config of a store in ``folder``, national numbers read as US."""
    url = f"sqlite:///{folder / 'store.db'}"
    data = config_dict(url, gateway, telegram, default_region="US")
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def make_store(config: Path) -> None:
    """The store as a bridge leaves it (the commands never create one)."""
    store = await SqlStore.open(load_config(str(config)).store.async_url)
    await store.close()


@pytest.fixture
async def config(tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram) -> Path:
    path = write_config(tmp_path, gateway, telegram)
    await make_store(path)
    return path


async def names(config: Path) -> dict[str, str]:
    result = await cli("contacts", "export", "--config", str(config))
    assert result.code == 0, result
    return {row["number"]: row["name"] for row in result.csv()}


async def test_a_vcard_3_file_with_bad_cards(tmp_path: Path, config: Path) -> None:
    file = tmp_path / "people.vcf"
    file.write_text(VCARD3, encoding="utf-8")
    result = await cli("contacts", "import", "--config", str(config), str(file))
    assert result.code == 0, result
    assert result.err.splitlines() == [
        f"{file}: line 11: '12' is not a phone number; skipped",
        f"{file}: line 13: a vCard with no number (Nobody); skipped",
    ]
    assert result.out == "imported 2, skipped 2 (2 numbers, 2 names changed)\n"
    assert await names(config) == {ALICE: "Alice Smith", BOB: "Bob Jones"}


async def test_a_vcard_4_file_by_its_content_and_a_second_import(
    tmp_path: Path, config: Path
) -> None:
    file = tmp_path / "export-from-phone"  # no extension: told by its content
    file.write_text(VCARD4, encoding="utf-8")
    result = await cli("contacts", "import", "--config", str(config), str(file))
    assert result.code == 0, result
    assert result.err == f"{file}: line 10: 'not-a-number' is not a phone number; skipped\n"
    assert result.out == "imported 2, skipped 1 (2 numbers, 2 names changed)\n"
    assert await names(config) == {CAROL: "Carol Chen", ALICE: "Carol Chen"}
    again = await cli("contacts", "import", "--config", str(config), str(file))
    assert again.out == "imported 2, skipped 1 (2 numbers, 0 names changed)\n"


async def test_a_csv_file_with_bad_rows(tmp_path: Path, config: Path) -> None:
    file = tmp_path / "people.csv"
    file.write_text(CSV, encoding="utf-8")
    result = await cli("contacts", "import", "--config", str(config), str(file))
    assert result.code == 0, result
    assert result.err.splitlines() == [
        f"{file}: line 4: no name for +15551230003; skipped",
        f"{file}: line 5: '0470' is not a phone number; skipped",
        f"{file}: line 7: 1 columns, the header has 3; skipped",
    ]
    assert result.out == "imported 3, skipped 3 (3 numbers, 3 names changed)\n"
    assert await names(config) == {
        ALICE: "Alice Smith",
        BOB: "Bob Jones",
        "+15551230005": "Eve, Esq.",
    }


async def test_a_plus_and_too_few_digits_is_a_bad_row_not_a_number(
    tmp_path: Path, config: Path
) -> None:
    """A "+1555" has the shape of E.164 but no phone number has so few digits."""
    file = tmp_path / "people.csv"
    file.write_text("number,name\n+1555,Short\n+44 20,Shorter\n", encoding="utf-8")
    result = await cli("contacts", "import", "--config", str(config), str(file))
    assert result.code == 0, result
    assert result.err.splitlines() == [
        f"{file}: line 2: '+1555' is not a phone number; skipped",
        f"{file}: line 3: '+44 20' is not a phone number; skipped",
    ]
    assert await names(config) == {}


async def test_export_round_trips_as_csv_and_vcard(
    tmp_path: Path, config: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    source = tmp_path / "people.csv"
    source.write_text(CSV, encoding="utf-8")
    assert (await cli("contacts", "import", "--config", str(config), str(source))).code == 0
    before = await names(config)
    for form in ("csv", "vcf"):
        out = tmp_path / f"out.{form}"
        result = await cli(
            "contacts", "export", "--config", str(config), "--format", form, "-o", str(out)
        )
        assert result.code == 0, result
        assert result.err == f"exported 3 to {out}\n"
        if form == "vcf":
            assert out.read_text(encoding="utf-8").count("BEGIN:VCARD") == 3
        # Into an empty store: the same names come back.
        other = tmp_path / form
        other.mkdir()
        empty = write_config(other, gateway, telegram)
        await make_store(empty)
        back = await cli("contacts", "import", "--config", str(empty), str(out))
        assert back.code == 0 and back.err == "", back
        assert await names(empty) == before


async def test_unreadable_and_unknown_files_exit_1(tmp_path: Path, config: Path) -> None:
    missing = await cli("contacts", "import", "--config", str(config), str(tmp_path / "none.csv"))
    assert missing.code == 1 and "No such file" in missing.err
    unknown = tmp_path / "notes.txt"
    unknown.write_text("just some text\n", encoding="utf-8")
    result = await cli("contacts", "import", "--config", str(config), str(unknown))
    assert result.code == 1
    assert "neither vCard nor CSV" in result.err
    headless = tmp_path / "people.csv"
    headless.write_text("+15551230001,Alice\n", encoding="utf-8")
    result = await cli("contacts", "import", "--config", str(config), str(headless))
    assert result.code == 1 and "needs the columns number and name" in result.err


async def test_an_import_renames_the_topic_of_a_running_bridge(
    tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    async with sqlite_bridge(tmp_path, gateway, telegram) as running:
        await running.sms(gateway, ALICE, "hello")
        await telegram.wait_for(lambda: "hello" in posted(telegram), 10)
        file = tmp_path / "people.csv"
        file.write_text(f"number,name\n{ALICE},Alice Smith\n", encoding="utf-8")
        result = await cli("contacts", "import", "--config", str(running.config), str(file))
        assert result.code == 0, result
        title = "Alice Smith (+1 555-123-0001)"
        await telegram.wait_for(lambda: [t.name for t in telegram.topics(GROUP)] == [title], 10)
