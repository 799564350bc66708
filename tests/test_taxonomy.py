from __future__ import annotations

from click.testing import CliRunner

from mailer import taxonomy
from mailer.cli.main import main


def test_a_near_miss_is_named_with_a_suggestion() -> None:
    assert taxonomy.problem("region", "limbrug") == (
        "unknown region 'limbrug'; did you mean 'limburg'? (known: "
        + ", ".join(taxonomy.REGIONS) + ")")
    assert "did you mean 'netwerk'?" in taxonomy.problem("audience", "netwerken")
    assert "did you mean" not in taxonomy.problem("topic", "xyz")


def test_known_slugs_pass_and_labels_resolve() -> None:
    assert taxonomy.problems("region", ["limburg", "noord-holland"]) == []
    assert taxonomy.problems("kind", ["update", "updaet"]) == [
        "unknown kind 'updaet'; did you mean 'update'? (known: update, verdieping, verbeteractiviteit)"]
    assert taxonomy.resolve("audience", "netwerk straf/zorg") == "netwerk"
    assert taxonomy.resolve("region", "Atlantis") is None


def test_the_cli_uses_the_same_check() -> None:
    result = CliRunner().invoke(main, ["send", "stalking", "--region", "limbrug", "--dry-run"])
    assert result.exit_code == 2
    assert "did you mean 'limburg'?" in result.output


def test_help_lists_the_choices() -> None:
    for command, vocabularies in ((["send"], ("region", "audience")),
                                  (["lists", "import"], ("region", "audience", "topic")),
                                  (["partners", "add"], ("region",))):
        shown = " ".join(CliRunner().invoke(main, [*command, "--help"]).output.split())
        for what in vocabularies:
            choices = "|".join(taxonomy.VOCABULARIES[what])
            assert f"--{what} [{choices}]" in shown, (command, what)
