package store

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, it := range []Item{
		{},
		{Value: []byte("hello"), Flags: 42, CAS: 7, Deadline: 1_800_000_000},
		{Value: []byte("a\r\nb\x00c"), Flags: math.MaxUint32, CAS: math.MaxUint64, Deadline: math.MaxInt64},
		{Value: []byte{}, Deadline: -1},
		{Value: bytes.Repeat([]byte("x"), 1<<16), Deadline: math.MinInt64},
	} {
		b := EncodeEnvelope(nil, it)
		if len(b) != EnvelopeHeaderSize+len(it.Value) {
			t.Fatalf("encoded length %d, want %d", len(b), EnvelopeHeaderSize+len(it.Value))
		}
		got, err := DecodeEnvelope(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Key != nil || !bytes.Equal(got.Value, it.Value) || got.Flags != it.Flags || got.CAS != it.CAS || got.Deadline != it.Deadline {
			t.Fatalf("round trip of %+v gave %+v", it, got)
		}
	}
}

func TestEnvelopeLayout(t *testing.T) {
	b := EncodeEnvelope([]byte("pre"), Item{Key: []byte("ignored"), Value: []byte("v"), Flags: 0x01020304, CAS: 0x05060708090a0b0c, Deadline: 0x0d0e0f1011121314})
	want := []byte("pre\x01\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14v")
	if !bytes.Equal(b, want) {
		t.Fatalf("EncodeEnvelope = %x, want %x", b, want)
	}
}

func TestEnvelopeMalformed(t *testing.T) {
	good := EncodeEnvelope(nil, Item{Value: []byte("v")})
	bad2 := append([]byte{2}, good[1:]...)
	for name, b := range map[string][]byte{
		"nil":         nil,
		"one byte":    {EnvelopeVersion},
		"header-1":    good[:EnvelopeHeaderSize-1],
		"version 0":   append([]byte{0}, good[1:]...),
		"version 2":   bad2,
		"foreign set": []byte("a value some other client stored there"),
	} {
		_, err := DecodeEnvelope(b)
		if !errors.Is(err, ErrMalformedEnvelope) || !strings.HasPrefix(err.Error(), "store: malformed envelope: ") {
			t.Errorf("%s: err = %v, want a malformed envelope error", name, err)
		}
	}
	// Exactly a header is a valid empty value.
	if it, err := DecodeEnvelope(good[:EnvelopeHeaderSize]); err != nil || len(it.Value) != 0 {
		t.Fatalf("header only: %+v, %v", it, err)
	}
}

// The decoded value is capped, so appending to it copies instead of writing
// into whatever follows in the caller's buffer.
func TestEnvelopeValueCapped(t *testing.T) {
	b := EncodeEnvelope(make([]byte, 0, 64), Item{Value: []byte("ab")})
	it, _ := DecodeEnvelope(b)
	if cap(it.Value) != len(it.Value) {
		t.Fatalf("cap %d, len %d", cap(it.Value), len(it.Value))
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{EnvelopeVersion})
	f.Add(EncodeEnvelope(nil, Item{Value: []byte("hello"), Flags: 1, CAS: 2, Deadline: 3}))
	f.Add(EncodeEnvelope(nil, Item{Deadline: -1}))
	f.Add([]byte("VALUE k 0 1\r\nx\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := DecodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedEnvelope) {
				t.Fatalf("error %v does not wrap ErrMalformedEnvelope", err)
			}
			return
		}
		if again := EncodeEnvelope(nil, it); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gave %x", b, again)
		}
		// And the other way: encoding what was decoded decodes to the same item.
		it2, err := DecodeEnvelope(EncodeEnvelope(nil, it))
		if err != nil || it2.Flags != it.Flags || it2.CAS != it.CAS || it2.Deadline != it.Deadline || !bytes.Equal(it2.Value, it.Value) {
			t.Fatalf("round trip: %+v, %v; want %+v", it2, err, it)
		}
	})
}
