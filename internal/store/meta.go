package store

import "context"

// GetToucher is the part of a Store that PlainMetaGet uses.
type GetToucher interface {
	Get(ctx context.Context, key, buf []byte, now int64) (Item, error)
	Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (Item, error)
}

// PlainMetaGet serves MetaGet for a tier that keeps no per-item meta state:
// options that need it (vivify, recache) are refused with ErrUnsupported,
// and the state reported is the zero one. A touch costs a Get and a Touch
// (two calls, not atomic), so that the Item is the one before the touch.
func PlainMetaGet(ctx context.Context, s GetToucher, key, buf []byte, o MetaGetOptions, now int64) (Item, MetaState, error) {
	if !o.Plain() {
		return Item{}, MetaState{}, ErrUnsupported
	}
	it, err := s.Get(ctx, key, buf, now)
	if err != nil || !o.Touch {
		return it, MetaState{}, err
	}
	if _, err := s.Touch(ctx, key, o.Deadline, nil, now); err != nil {
		return Item{}, MetaState{}, err
	}
	return it, MetaState{}, nil
}
