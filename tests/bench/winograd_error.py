#!/usr/bin/python3
"""winograd_error.py — the float32 error of the engine's Winograd variants.

Simulates one ResNet-like 3x3 layer (Cin 256, Cout 64, He-initialised weights, ReLU'd
normal input) in float32: direct convolution, F(2x2,3x3), F(4x4,3x3) with Lavin's
points (0, +-1, +-2) and F(4x4,3x3) with the points kern_wino4.c uses (0, +-1, 1/2,
-2), U computed in float64 then rounded as the engine does; prints each one's max
and RMS error relative to a float64 direct convolution.

    /usr/bin/python3 tests/bench/winograd_error.py

A run (2026-11-30): direct 2.8e-07 max; F(2x2) 2.7e-07; F(4x4) Lavin 3.8e-06 (12x);
F(4x4) with 1/2 and -2 1.5e-06 (2.5x lower than Lavin's). The engine takes F(4x4) only on
maps of 56x56 outputs and more (ResNet layer1, GoogLeNet conv3), where it gains most;
the network-level test (tests/diff/test_engine_vs_torch.py) then measures ResNet-50
at 8.3e-05 of its 1e-4 x max|logit| budget against PyTorch float32, 6.6e-05 against
float64 (PyTorch float32 itself: 4.4e-05).
"""
import numpy as np
rng=np.random.default_rng(0)
def mats(kind):
    if kind==2:
        BT=np.array([[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]],float)
        G=np.array([[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]],float)
        AT=np.array([[1,1,1,0],[0,1,-1,-1]],float)
    elif kind==5:  # F(4x4), points 0, 1, -1, 1/2, -2 (kern_wino4.c)
        BT=np.array([[1,-1.5,-2,1.5,1,0],[0,-1,.5,2.5,1,0],[0,1,-2.5,.5,1,0],[0,-2,-1,2,1,0],[0,.5,-1,-.5,1,0],[0,1,-1.5,-2,1.5,1]],float)
        G=np.array([[1,0,0],[1/3,1/3,1/3],[-1/3,1/3,-1/3],[-16/15,-8/15,-4/15],[1/15,-2/15,4/15],[0,0,1]],float)
        AT=np.array([[1,1,1,1,1,0],[0,1,-1,.5,-2,0],[0,1,1,.25,4,0],[0,1,-1,.125,-8,1]],float)
    else:
        BT=np.array([[4,0,-5,0,1,0],[0,-4,-4,1,1,0],[0,4,-4,-1,1,0],[0,-2,-1,2,1,0],[0,2,-1,-2,1,0],[0,4,0,-5,0,1]],float)
        G=np.array([[1/4,0,0],[-1/6,-1/6,-1/6],[-1/6,1/6,-1/6],[1/24,1/12,1/6],[1/24,-1/12,1/6],[0,0,1]],float)
        AT=np.array([[1,1,1,1,1,0],[0,1,-1,2,-2,0],[0,1,1,4,4,0],[0,1,-1,8,-8,1]],float)
    return BT,G,AT
cin,cout=256,64
T=8  # tiles per dim
for kind in (2,4,5):
    BT,G,AT=mats(kind); m=AT.shape[0]; a=BT.shape[0]
    H=T*m+2
    x=np.maximum(rng.standard_normal((cin,H,H)),0)
    w=rng.standard_normal((cout,cin,3,3))*np.sqrt(2/(cin*9))
    # reference fp64 direct
    ref=np.zeros((cout,T*m,T*m))
    for ky in range(3):
        for kx in range(3):
            ref+=np.einsum('oc,chw->ohw',w[:,:,ky,kx],x[:,ky:ky+T*m,kx:kx+T*m])
    # direct fp32
    x32=x.astype(np.float32); w32=w.astype(np.float32)
    d32=np.zeros((cout,T*m,T*m),np.float32)
    for ky in range(3):
        for kx in range(3):
            d32+=np.einsum('oc,chw->ohw',w32[:,:,ky,kx],x32[:,ky:ky+T*m,kx:kx+T*m]).astype(np.float32)
    # winograd fp32 (U from fp64 rounded)
    U=np.einsum('ik,ockl,jl->ijoc',G,w,G).astype(np.float32)
    BT32=BT.astype(np.float32); AT32=AT.astype(np.float32)
    y=np.zeros((cout,T*m,T*m),np.float32)
    for ty in range(T):
        for tx in range(T):
            d=x32[:,ty*m:ty*m+a,tx*m:tx*m+a]
            V=np.einsum('ik,ckl,jl->ijc',BT32,d,BT32).astype(np.float32)
            M=np.einsum('ijoc,ijc->ijo',U,V).astype(np.float32)
            Y=np.einsum('ai,ijo,bj->oab',AT32,M,AT32).astype(np.float32)
            y[:,ty*m:ty*m+m,tx*m:tx*m+m]=Y
    s=np.abs(ref).max()
    name={2:"F(2x2)",4:"F(4x4) Lavin",5:"F(4x4) 0,+-1,1/2,-2"}[kind]
    print(f"{name}: wino err {np.abs(y-ref).max()/s:.2e} (rms {np.sqrt(((y-ref)**2).mean())/np.sqrt((ref**2).mean()):.2e}); direct fp32 err {np.abs(d32-ref).max()/s:.2e} (rms {np.sqrt(((d32-ref)**2).mean())/np.sqrt((ref**2).mean()):.2e})")
