"""What the preflight's checks found, collected over every check before the launch is refused."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CheckResult:
    """What the checks found: ``errors`` stop the launch, ``notes`` are printed for information.

    Example:
        >>> result = CheckResult(notes=["config: task=report_gleu"])
        >>> result.ok, result.format().splitlines()[-1]
        (True, 'preflight: ok')
    """

    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        lines = [f"preflight: note: {n}" for n in self.notes]
        lines += [f"preflight: error: {e}" for e in self.errors]
        lines.append("preflight: ok" if self.ok else f"preflight: {len(self.errors)} problem(s); nothing was started")
        return "\n".join(lines)
