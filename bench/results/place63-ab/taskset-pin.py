import os,sys,time,subprocess
mode=sys.argv[1]; harness=sys.argv[2]; log=open(sys.argv[3],'a')
def scan():
    r={}
    for p in os.listdir('/proc'):
        if not p.isdigit(): continue
        try: r[int(p)]=[c.decode(errors='replace') for c in open(f'/proc/{p}/cmdline','rb').read().split(b'\0') if c]
        except Exception: pass
    return r
def tcpu(pid):
    t={}
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            s=open(f'/proc/{pid}/task/{tid}/stat').read(); f=s[s.rindex(')')+2:].split()
            t[int(tid)]=int(f[11])+int(f[12])
        except Exception: pass
    return t
def aff(tid,cpus): subprocess.run(['taskset','-p','-c',cpus,str(tid)],stdout=subprocess.DEVNULL)
done=set()
while True:
    ps=scan()
    h=[p for p,c in ps.items() if c and os.path.basename(c[0])==harness and '-out' in c]
    if not h: time.sleep(0.05); continue
    cl=[p for p,c in ps.items() if c and os.path.basename(c[0])=='iperf3' and '-u' in c and '-c' in c and p not in done]
    if not cl: time.sleep(0.05); continue
    c=cl[0]; done.add(c)
    a=tcpu(h[0]); time.sleep(0.15); b=tcpu(h[0])
    poll=max(b,key=lambda k:b[k]-a.get(k,0))
    if mode=='together': aff(c,'0'); aff(poll,'0')
    elif mode=='apart': aff(c,'0'); aff(poll,'1')
    log.write(f'{time.time():.1f} {mode} client={c} poll={poll} d={b[poll]-a.get(poll,0)}\n'); log.flush()
    while os.path.exists(f'/proc/{c}'): time.sleep(0.05)
    aff(poll,'0,1')
