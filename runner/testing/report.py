"""What `ebpf-run test` prints: one line per case, then the summary.

    PASS hello-buffer:echoed-pid
    PASS busy:many [120000 records of the run not kept (over 8388608 bytes)]
    FAIL hello-buffer:echoed-pid: expected exactly 1 event on output where ...; saw ...
    SKIP hello:kprobe: kernel has no kprobes (CONFIG_KPROBES is off)
    skipped: hello:kprobe (kernel has no kprobes (CONFIG_KPROBES is off))
    1 passed, 1 failed, 1 skipped

The last line is exactly `N passed, N failed`, with `, N skipped` when any were. With
--json every line is a typed record instead: {"type": "test_case", ...} per case and one
{"type": "test_summary", ...} at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import List, TextIO, Tuple

from runner.testing.session import CaseResult


@dataclass
class Report:
    out: TextIO
    json: bool = False
    results: List[Tuple[str, str, CaseResult]] = field(default_factory=list)

    def case(self, file: str, label: str, result: CaseResult) -> None:
        self.results.append((file, label, result))
        if self.json:
            self._record({"type": "test_case", "case": label, "file": file,
                          "status": result.status, "seconds": round(result.seconds, 3),
                          "failures": [{"message": f.message, "origin": f.origin or None}
                                       for f in result.failures], "reason": result.reason or None,
                          "notes": list(result.notes)})
        elif result.status == "pass":
            self._line(f"PASS {label}{_notes(result)}")
        elif result.status == "skip":
            self._line(f"SKIP {label}: {result.reason}")
        else:
            self._line(f"FAIL {label}: " + "; and ".join(f.message for f in result.failures) +
                       _notes(result))

    def count(self, status: str) -> int:
        return sum(1 for _, _, r in self.results if r.status == status)

    def skipped(self) -> List[str]:
        return [f"{label} ({r.reason})" for _, label, r in self.results if r.status == "skip"]

    def summary(self) -> None:
        passed, failed, skipped = self.count("pass"), self.count("fail"), self.count("skip")
        if self.json:
            self._record({"type": "test_summary", "passed": passed, "failed": failed,
                          "skipped": skipped,
                          "skipped_cases": [label for _, label, r in self.results
                                            if r.status == "skip"]})
            return
        if skipped:
            self._line("skipped: " + ", ".join(self.skipped()))
        self._line(f"{passed} passed, {failed} failed" +
                   (f", {skipped} skipped" if skipped else ""))

    def _record(self, record: dict) -> None:
        self._line(json.dumps(record, ensure_ascii=False))

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def _notes(result: CaseResult) -> str:
    return f" [{'; '.join(result.notes)}]" if result.notes else ""
