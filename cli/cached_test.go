package cli

import (
	"errors"
	"testing"
	"time"
)

func TestCachedLoadsOncePerTTL(t *testing.T) {
	now := time.Unix(100, 0)
	c := cached[int]{ttl: 200 * time.Millisecond, now: func() time.Time { return now }}
	loads := 0
	load := func() (int, error) { loads++; return loads, nil }
	for range 5 { // one pass over 5 ports
		if v, err := c.get(load); err != nil || v != 1 {
			t.Fatalf("get = %d, %v", v, err)
		}
	}
	now = now.Add(250 * time.Millisecond)
	if v, _ := c.get(load); v != 2 || loads != 2 {
		t.Fatalf("after ttl: %d (loads %d)", v, loads)
	}
	now = now.Add(-time.Second) // a clock that went back reloads rather than trusting the cache
	if v, _ := c.get(load); v != 3 {
		t.Fatalf("clock went back: %d", v)
	}
	bad := errors.New("dump failed")
	now = now.Add(time.Hour)
	if _, err := c.get(func() (int, error) { return 0, bad }); !errors.Is(err, bad) {
		t.Fatalf("error: %v", err)
	}
	if v, _ := c.get(load); v != 4 {
		t.Fatalf("a failed load was cached: %d", v)
	}
}
