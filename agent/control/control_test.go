package control

import "testing"

func TestRoundTrip(t *testing.T) {
	line := Format(VerbReady, map[string]string{"version": "1.0", "cpus": "2", "note": "a b"})
	if line != "novm-agent ready cpus=2 note=a_b version=1.0\n" {
		t.Fatalf("Format = %q", line)
	}
	m, ok := Parse(line)
	if !ok || m.Verb != VerbReady || m.Fields["cpus"] != "2" || m.Fields["version"] != "1.0" {
		t.Fatalf("Parse = %+v, %v", m, ok)
	}
	if _, ok := Parse("random kernel noise\n"); ok {
		t.Fatal("non-agent line parsed")
	}
}
