package main

import (
	"context"
	"syscall"
)

// ovsDriver is Open vSwitch with AF_XDP ports (not yet).
type ovsDriver struct{}

func (d *ovsDriver) Name() string                       { return "ovs" }
func (d *ovsDriver) Start(e *Env) error                 { return ErrUnsupported }
func (d *ovsDriver) Stop() error                        { return nil }
func (d *ovsDriver) AddPort(*Env, int) error            { return ErrUnsupported }
func (d *ovsDriver) DelPort(*Env, int) error            { return ErrUnsupported }
func (d *ovsDriver) Relink(*Env, int, slotState) error  { return nil }
func (d *ovsDriver) Restart(*Env, syscall.Signal) error { return ErrUnsupported }
func (d *ovsDriver) Answers(context.Context) error      { return ErrUnsupported }
func (d *ovsDriver) Footprint(context.Context) (Footprint, bool, error) {
	return Footprint{}, false, nil
}
func (d *ovsDriver) Check(context.Context, *Env, []slotState) (int, []Violation) { return 0, nil }
