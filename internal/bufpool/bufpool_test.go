package bufpool

import "testing"

func TestGetPut(t *testing.T) {
	p := New(1 << 10)
	b := p.Get(100)
	if len(b.B) != 0 || cap(b.B) < 100 {
		t.Fatalf("Get(100) = len %d cap %d", len(b.B), cap(b.B))
	}
	b.B = append(b.B, "hello"...)
	p.Put(b)
	// Whatever comes back is empty and large enough, reused or not.
	for _, n := range []int{10, 100, 500} {
		c := p.Get(n)
		if len(c.B) != 0 || cap(c.B) < n {
			t.Fatalf("Get(%d) = len %d cap %d", n, len(c.B), cap(c.B))
		}
		p.Put(c)
	}
	big := p.Get(4 << 10)
	p.Put(big) // over the bound: dropped, not kept
	p.Put(nil)
	if c := p.Get(1); cap(c.B) > 1<<10 {
		t.Fatalf("a buffer of %d bytes was kept past the %d-byte bound", cap(c.B), 1<<10)
	}
}
