"""Errors a user can meet when a file is wrong: each names the file, line, field and fix."""

from __future__ import annotations

from dataclasses import dataclass

from primum.core.errors import UserError


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    path: str  # dotted field path, e.g. "services.scheduling-api.tier"
    message: str
    fix: str

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}\n  fix: {self.fix}"


class InputError(UserError):
    """One or more problems in a user's input. The CLI exits 2 on it."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))

    def lines(self) -> list[str]:
        return [p.render() for p in self.problems]

    @classmethod
    def single(
        cls, file: str, message: str, fix: str, path: str = "", line: int | None = None
    ) -> InputError:
        return cls([Problem(file=file, line=line, path=path, message=message, fix=fix)])
