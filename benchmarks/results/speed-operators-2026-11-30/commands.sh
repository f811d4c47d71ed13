# run from anywhere; R = this results folder
R=/work/main/benchmarks/results/speed-operators-2026-11-30
ARGS="--engines forward --problems poisson1d,poisson2d,heat1d,heat2d --archs mlp,mff --threads 2 --markdown"
for i in 1 2; do
  for side in before after; do
    if [ $side = before ]; then D=/tmp/before; else D=/work/main; fi
    echo "== $side run $i $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    (cd $D && PYTHONPATH=$D python benchmarks/speed.py $ARGS --out $R/$side-$i.json > $R/$side-$i.md 2> $R/$side-$i.log)
    echo "   rc=$? end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
